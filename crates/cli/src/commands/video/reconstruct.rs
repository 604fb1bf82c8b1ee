//! `brainrecon video reconstruct`: a clip per decoded test window.

use crate::commands::prelude::*;
use brainrecon_diffusion::embedded::SHAPES_MOTION;
use brainrecon_diffusion::pipeline::SampleOptions;
use brainrecon_diffusion::scheduler::SchedulerKind;
use brainrecon_routes::video::reconstruct::{reconstruct_with, VideoReconstructOptions};

/// Generate a clip per test window from the decoded context with motion modules
///
/// Each clip: the decoded context conditions a motion U-Net (the image model's U-Net with the
/// adapter's temporal transformers), guided against the decoded context of the mean training
/// window (MinD-Video's negative condition; --empty-negative uses the empty prompt), from
/// seeded noise or, with --strength < 1 after `video fit --latent`, img2img-style from the
/// decoded first-frame latent on every frame. When `video fit` decoded the clips' velocity,
/// every frame's noise is the first frame's moved by it, so the content moves as decoded
/// (--still-noise: independent noise per frame). Seeded per clip; clips already written are
/// kept (rerun to resume). Writes clips/<segment>-<tr>.mp4 (H.264), .gif and the PNG frames.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon video reconstruct --decoded video-fit --out video-recon\n  \
    brainrecon video reconstruct --decoded cc2017-fit --model runwayml/stable-diffusion-v1-5 --adapter guoyww/animatediff-motion-adapter-v1-5-2 --steps 25 --guidance 12.5 --out cc2017-recon"
)]
#[command(mut_arg("dtype", |a| a.help("f32 or f16 (GPU)")))]
pub struct Args {
    /// `video fit`'s folder
    #[arg(long)]
    decoded: PathBuf,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// The image model (the one `video fit` used)
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// MotionAdapter or UNetMotionModel folder, a cached adapter id, or shapes-motion (built
    /// in, for shapes-ldm)
    #[arg(long, default_value = SHAPES_MOTION)]
    adapter: String,
    /// Denoising steps (DDIM)
    #[arg(long, default_value_t = 25)]
    steps: usize,
    /// Classifier-free guidance scale
    #[arg(long, default_value_t = 5.0)]
    guidance: f64,
    /// img2img strength from the decoded first-frame latent (`video fit --latent`; 1: from
    /// noise, as MinD-Video)
    #[arg(long, default_value_t = 1.0)]
    strength: f64,
    /// Guide against the empty prompt instead of the mean window's context
    #[arg(long)]
    empty_negative: bool,
    /// Independent noise per frame, not the first frame's moved by the decoded velocity
    #[arg(long)]
    still_noise: bool,
    /// Only the first N test windows
    #[arg(long)]
    limit: Option<usize>,
    /// Seed of the clips' noise
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    dtype: DtypeArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_sampling(args.steps, args.guidance)?;
    let device = args.device.device()?;
    let dtype = args.dtype.dtype()?;
    let opts = VideoReconstructOptions {
        decoded: args.decoded,
        out: args.out,
        sample: SampleOptions {
            steps: args.steps,
            guidance: args.guidance,
            scheduler: SchedulerKind::Ddim { eta: 0.0 },
        },
        strength: args.strength,
        mean_negative: !args.empty_negative,
        motion: !args.still_noise,
        seed: args.seed,
        limit: args.limit,
        progress: show_progress(),
    };
    let show = show_progress();
    let summary = reconstruct_with(
        &args.model,
        &args.adapter,
        dtype,
        &device,
        &opts,
        &mut |i, n, _| progress_line(show, format_args!("clips: {i}/{n}"), false),
    )?;
    report(args.json.json, &summary, |_| summary.text(&opts.out))
}
