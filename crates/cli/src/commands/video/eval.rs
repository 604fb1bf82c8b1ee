//! `brainrecon video eval`: MinD-Video's scores and the report page.

use crate::commands::prelude::*;
use brainrecon_routes::video::evaluate::{evaluate_folder, VideoEvalOptions};

/// Score reconstructed clips by MinD-Video's protocol and write the report
///
/// N-way top-1 (the ground truth's top 3 classes against n − 1 drawn, 100 trials; the chance
/// level of that rule is printed beside the 1/n the papers quote), motion direction, colour and
/// shape read from the frames, SSIM and PSNR per frame. On the synthetic subject the classes
/// come from the clip reading rule (colour × shape × motion). Writes video_eval.json and an
/// HTML page with stimulus and reconstruction clips side by side.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon video eval --reconstructed video-recon --stimuli sim-video/stimuli --out video-report"
)]
#[command(mut_arg("device", |a| a.help("cpu, cuda or cuda:N (the classifiers)")))]
pub struct Args {
    /// `video reconstruct`'s folder
    #[arg(long)]
    reconstructed: PathBuf,
    /// The stimuli (testK.mp4 or frame folders testK/)
    #[arg(long)]
    stimuli: PathBuf,
    /// Output folder (video_eval.json, index.html)
    #[arg(long)]
    out: PathBuf,
    /// Frame side for SSIM and PSNR (MinD-Video: 256; default the stimulus frames')
    #[arg(long)]
    size: Option<usize>,
    /// ViT-B/16 for 2-way-I (a folder or cached id: google/vit-base-patch16-224)
    #[arg(long)]
    vit: Option<String>,
    /// VideoMAE for 2-way-V and 50-way-V (MCG-NJU/videomae-base-finetuned-kinetics)
    #[arg(long)]
    videomae: Option<String>,
    /// Seed of the n-way trials
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = VideoEvalOptions {
        reconstructed: args.reconstructed,
        stimuli: args.stimuli,
        out: args.out,
        size: args.size,
        seed: args.seed,
    };
    let device = args.device.device()?;
    let (summary, page) = evaluate_folder(
        &opts,
        args.vit.as_deref(),
        args.videomae.as_deref(),
        &device,
    )?;
    report(args.json.json, &summary, |_| summary.text(&page))
}
