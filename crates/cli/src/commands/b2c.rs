use crate::commands::prelude::*;
use brainrecon_routes::b2c::request::{
    ablation_request, train_request, AblationRequest, TrainingRequest,
};
use brainrecon_routes::b2c::train::{TrainEngine, TrainOptions};

subcommands! {
    /// Brain-to-Context: train a Transformer that turns betas into the diffusion model's context
    pub enum B2cCommand {
        Train(TrainArgs) => run_train,
        Ablation(AblationArgs) => run_ablation,
    }
}

/// Settings shared by `train` and `ablation`.
#[derive(clap::Args)]
pub struct Training {
    /// A prepared subject directory (single-trial train betas of nsdgeneral)
    #[arg(long)]
    subject: PathBuf,
    /// Diffusers folder, cache snapshot, cached model id (ORG/NAME), or shapes-ldm (built in)
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// Weight W of the CLIP alignment loss W·(MSE + 1 − cosine) against the captions' CLIP
    /// text context, in [0, 100]; 0 turns it off
    #[arg(long, default_value_t = 1.0)]
    clip_loss: f64,
    /// What the U-Net predicts: eps, v or x0
    #[arg(long, default_value = "eps")]
    objective: String,
    /// Which U-Net weights train with the encoder: unet (all, as the paper), attn-kv (the
    /// cross-attention keys and values) or none
    #[arg(long, default_value = "unet")]
    tune: String,
    /// Optimiser steps
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Trials per step
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Peak learning rate (warm-up, then cosine decay)
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Transformer blocks of the encoder
    #[arg(long, default_value_t = 6)]
    layers: usize,
    /// Seed of initialisation, batches, timesteps, noise and dropout
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Steps between checkpoints (rerunning the command resumes from the newest)
    #[arg(long, default_value_t = 200)]
    checkpoint_every: usize,
    /// Where the images' VAE latents and CLIP text contexts are computed once (default
    /// SUBJECT/features/full-size)
    #[arg(long)]
    features: Option<PathBuf>,
    /// What differentiates a training step on the CPU: tape (the project's own, default) or
    /// candle (candle's autograd; other devices always use it). Both give the same losses
    /// within f32 rounding
    #[arg(long, default_value = "tape")]
    engine: String,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

impl Training {
    fn request(&self) -> anyhow::Result<TrainingRequest> {
        Ok(TrainingRequest {
            subject: self.subject.clone(),
            model: self.model.clone(),
            options: TrainOptions {
                clip_loss: self.clip_loss,
                steps: self.steps,
                batch: self.batch,
                lr: self.lr,
                seed: self.seed,
                layers: self.layers,
                checkpoint_every: self.checkpoint_every,
                engine: TrainEngine::parse(&self.engine).map_err(|e| usage(format!("--{e}")))?,
                ..TrainOptions::default()
            },
            objective: self.objective.clone(),
            tune: self.tune.clone(),
            features: self.features.clone(),
            device: self.device.choice()?,
            progress: super::show_progress(),
        })
    }
}

/// Train the B2C encoder (and tune the U-Net) on a subject's single-trial betas.
///
/// The nsdgeneral betas, split into ROI patches (V1, V2–V4, higher visual, other; read from the
/// subject's prf-visualrois and streams atlases) or not (--patch none), become the model's 77 ×
/// D context through a Transformer encoder; the U-Net is fine-tuned with it (the VAE is frozen,
/// its latents computed once at the model's full size). Loss: the diffusion loss of
/// --objective, plus --clip-loss W × (MSE + 1 − cosine) against the CLIP text context of the
/// image's captions. Writes OUT/encoder/, OUT/unet/tuned.safetensors, OUT/training.json,
/// OUT/losses.json and OUT/loss.png; checkpoints in OUT/.train/ make a rerun resume.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon b2c train --subject prepared/subj01 --model shapes-ldm --out b2c/subj01 --steps 2000\n  brainrecon reconstruct --method b2c --b2c b2c/subj01 --subject prepared/subj01 --model shapes-ldm --out recons/b2c"
)]
pub struct TrainArgs {
    #[command(flatten)]
    training: Training,
    /// roi (one projection per anatomical group, as the paper) or none (one for all voxels)
    #[arg(long, default_value = "roi")]
    patch: String,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
}

/// Run the paper's 2 × 2 ablation (ROI patches × CLIP loss): train, reconstruct and evaluate
/// each cell with the same seed and steps.
///
/// Writes OUT/<cell>/{model,recon}/ for the cells none, patch, clip and patch+clip, then
/// OUT/ablation.md and OUT/ablation.html (the paper's Table 1 layout, with its values for
/// comparison) and OUT/figure.png (its Figure 3 layout: the stimulus, then one column per
/// cell). Every step resumes.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon b2c ablation --subject prepared/subj01 --model shapes-ldm --out b2c-ablation --steps 1500 --samples 1"
)]
pub struct AblationArgs {
    #[command(flatten)]
    training: Training,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// Reconstructions per test image
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// DDIM steps
    #[arg(long, default_value_t = 50)]
    sample_steps: usize,
    /// Classifier-free guidance against the empty prompt (≤ 1 disables it)
    #[arg(long, default_value_t = 3.0)]
    guidance: f64,
    /// Only the first N test images
    #[arg(long)]
    limit: Option<usize>,
    /// Rows of the figure
    #[arg(long, default_value_t = 6)]
    figure_rows: usize,
}

fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    let summary = train_request(&args.training.request()?, &args.patch, &args.out)?;
    args.training.json.print(&summary, |_| summary.text())
}

fn run_ablation(args: AblationArgs) -> anyhow::Result<()> {
    let result = ablation_request(
        &args.training.request()?,
        &AblationRequest {
            samples: args.samples,
            sample_steps: args.sample_steps,
            guidance: args.guidance,
            limit: args.limit,
            figure_rows: args.figure_rows,
        },
        &args.out,
    )?;
    super::report(args.training.json.json, &result, |_| result.text())
}
