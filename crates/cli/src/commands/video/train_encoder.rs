//! `brainrecon video train-encoder`: MinD-Video's decoder for the video route.

use super::WindowsArgs;
use crate::commands::prelude::*;
use brainrecon_routes::decode::options::Tune;
use brainrecon_routes::video::train_encoder::{
    train_encoder_with, EncoderTrainOptions, TrainEngine,
};

/// Decode each fMRI window with a Transformer encoder (MinD-Video's decoder) instead of ridge
///
/// An fMRI window encoder (each frame's voxels cut into patches; attention over a frame's
/// patches, then over the window's frames; the patches mapped to the context's tokens) is trained first against the clip captions' text contexts (MinD-Video's contrastive
/// loss plus B2C's alignment term, --steps), then, with --cotrain-steps, through the motion
/// U-Net's diffusion loss on the stimulus clips; --tune unet trains the motion U-Net too
/// (written to OUT/unet_motion for --adapter). OUT is laid out as `video fit`'s, so
/// `video reconstruct --decoded OUT` and `video eval` take it unchanged. Checkpoints go to
/// OUT/.train/; rerunning resumes.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  \
    brainrecon video train-encoder --prepared video-sub1 --stimuli sim-video/stimuli \\\n    \
    --captions sim-video/stimuli/captions.tsv --cotrain-steps 200 --tune unet --out video-enc\n  \
    brainrecon video reconstruct --decoded video-enc --adapter video-enc/unet_motion --out video-recon")]
pub struct Args {
    #[command(flatten)]
    data: WindowsArgs,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// The diffusion model whose text encoder makes the targets
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// The motion adapter or motion U-Net for co-training: shapes-motion (built in), a folder
    /// or a cached id
    #[arg(long, default_value = "shapes-motion")]
    adapter: String,
    /// Contrastive steps (stage 1)
    #[arg(long, default_value_t = 400)]
    steps: usize,
    /// Co-training steps with the motion U-Net (stage 2; 0: none)
    #[arg(long, default_value_t = 0)]
    cotrain_steps: usize,
    /// What of the motion U-Net trains in stage 2: none, attn-kv or unet (a whole
    /// UNetMotionModel folder)
    #[arg(long, default_value = "none", value_parser = ["none", "attn-kv", "unet"])]
    tune: String,
    /// Windows per step (at least 2: the contrastive loss compares them)
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Peak learning rate of stage 1 (AdamW, warm-up then cosine)
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Peak learning rate of stage 2
    #[arg(long, default_value_t = 1e-4)]
    cotrain_lr: f64,
    /// Voxels of a patch: each frame's voxels are cut into patches of this many (MinD-Video's 16)
    #[arg(long, default_value_t = 16)]
    patch_size: usize,
    /// Spatial + temporal block pairs of the encoder
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Dropout inside the encoder
    #[arg(long, default_value_t = 0.1)]
    dropout: f64,
    /// Temperature of the contrastive loss
    #[arg(long, default_value_t = 0.1)]
    temperature: f64,
    /// Weight of the alignment term (MSE + 1 − cosine against the caption's context)
    #[arg(long, default_value_t = 1.0)]
    align_weight: f64,
    /// Share of co-training samples conditioned on the empty prompt (for guidance)
    #[arg(long, default_value_t = 0.1)]
    context_dropout: f64,
    /// Seed of initialisation, batches, dropout and noise
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Do not decode the clips' global velocity with ridge (see `video fit`)
    #[arg(long)]
    no_motion: bool,
    /// What differentiates the encoder's stage 1 on the CPU: the project's tape or candle's
    /// autograd
    #[arg(long, default_value = "tape", value_parser = ["tape", "candle"])]
    engine: String,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = EncoderTrainOptions {
        prepared: args.data.prepared,
        stimuli: args.data.stimuli,
        captions: args.data.captions,
        out: args.out,
        patch_size: args.patch_size,
        layers: args.layers,
        dropout: args.dropout,
        temperature: args.temperature,
        align_weight: args.align_weight,
        steps: args.steps,
        cotrain_steps: args.cotrain_steps,
        tune: Tune::parse(&args.tune)?,
        batch: args.batch,
        lr: args.lr,
        cotrain_lr: args.cotrain_lr,
        context_dropout: args.context_dropout,
        checkpoint_every: 100,
        seed: args.seed,
        motion: !args.no_motion,
        engine: TrainEngine::parse(&args.engine).map_err(|e| usage(format!("--{e}")))?,
    };
    let show = show_progress();
    let summary = train_encoder_with(
        &args.model,
        &args.adapter,
        &args.device.device()?,
        &opts,
        &mut |stage, step, total, loss| {
            let line = format_args!("{stage} step {step}/{total} loss {loss:.4}");
            progress_line(show, line, step == total)
        },
    )?;
    report(args.json.json, &summary, |_| summary.text(&opts.out))
}
