//! shapes-motion's training settings ([`MotionTrainConfig::shapes_motion`]; the defaults are
//! those of `video train-motion`) and the motion adapter's layout for an image model.

use brainrecon_diffusion::motion::{LayersPerBlock, MotionAdapterConfig};
use brainrecon_diffusion::pipeline::StableDiffusion;
use brainrecon_diffusion::unet::OneOrMany;

/// Settings of a motion-module training run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MotionTrainConfig {
    /// Frames per training clip (the route's clips have 6 per TR).
    pub frames: usize,
    /// Clips per step.
    pub batch: usize,
    /// Training steps.
    pub steps: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// Share of captions replaced by the empty prompt.
    pub caption_dropout: f64,
    /// γ of the min-SNR weighting of the loss (Hang et al. 2023).
    pub snr_gamma: f64,
    /// Attention heads of every motion module.
    pub heads: usize,
    /// Longest clip the modules' frame positions cover.
    pub max_frames: usize,
    /// Train the image U-Net too and write a whole `UNetMotionModel`.
    pub tune_unet: bool,
    /// Timesteps drawn as t/T = s·u / (1 + (s − 1)·u), u uniform: 1 is uniform, larger values
    /// favour high noise, where a clip's layout and motion are decided (as SD3's shift and
    /// video models' noise schedules; the ε loss barely sees motion at low noise).
    pub timestep_shift: f64,
}

impl Default for MotionTrainConfig {
    fn default() -> Self {
        MotionTrainConfig {
            frames: 6,
            batch: 4,
            steps: 1000,
            lr: 1e-3,
            checkpoint_every: 100,
            caption_dropout: 0.1,
            snr_gamma: 5.0,
            heads: 4,
            max_frames: 32,
            tune_unet: false,
            timestep_shift: 1.0,
        }
    }
}

impl MotionTrainConfig {
    /// The shipped shapes-motion (its `training.json`): 2000 steps at 5e-4 with the image
    /// U-Net tuned, over shapes-ldm, seed 0.
    pub fn shapes_motion() -> Self {
        MotionTrainConfig {
            steps: 2000,
            lr: 5e-4,
            tune_unet: true,
            ..Self::default()
        }
    }
}

impl MotionTrainConfig {
    /// Refuses settings no run can train with, naming the `video train-motion` flag that set
    /// them: no step, a timestep shift that is not a positive number, frames outside
    /// 1 ..= `max_frames`, an empty batch.
    pub fn check(&self) -> brainrecon_nn::Result<()> {
        let bad = |message: String| Err(brainrecon_nn::ModelError::Invalid(message));
        if self.steps == 0 {
            return bad("--steps must be at least 1".into());
        }
        if !(self.timestep_shift.is_finite() && self.timestep_shift > 0.0) {
            return bad(format!(
                "--timestep-shift must be positive, found {}",
                self.timestep_shift
            ));
        }
        if self.frames == 0 || self.frames > self.max_frames || self.batch == 0 {
            return bad(format!(
                "--frames must be 1..={} and --batch at least 1 (found {} and {})",
                self.max_frames, self.frames, self.batch
            ));
        }
        Ok(())
    }
}

/// The adapter layout for `sd`'s U-Net: one motion module per resnet, one layer each.
pub fn adapter_config(sd: &StableDiffusion, config: &MotionTrainConfig) -> MotionAdapterConfig {
    let unet = &sd.unet.config;
    MotionAdapterConfig {
        block_out_channels: unet.block_out_channels.clone(),
        motion_layers_per_block: unet.layers_per_block.clone(),
        motion_transformer_layers_per_block: LayersPerBlock::One(1),
        motion_mid_block_layers_per_block: 1,
        motion_transformer_layers_per_mid_block: OneOrMany::One(1),
        motion_num_attention_heads: OneOrMany::One(config.heads),
        motion_norm_num_groups: unet.norm_num_groups,
        motion_max_seq_length: config.max_frames,
        use_motion_mid_block: true,
        conv_in_channels: None,
    }
}
