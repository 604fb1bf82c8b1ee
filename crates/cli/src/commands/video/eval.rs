//! `brainrecon video eval`: MinD-Video's scores and the report page.

use crate::args::{DeviceArgs, JsonArg};
use crate::commands::print_json;
use brainrecon_routes::video::breakdown::GroupScores;
use brainrecon_routes::video::classifiers::VideoClassifiers;
use brainrecon_routes::video::evaluate::{evaluate, VideoEvalOptions};
use brainrecon_routes::video::report::write_report;
use std::path::PathBuf;

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
        reconstructed: args.reconstructed.clone(),
        stimuli: args.stimuli.clone(),
        out: args.out.clone(),
        size: args.size,
        seed: args.seed,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| brainrecon_data::DataError::io(&args.out, e))?;
    let made: brainrecon_routes::video::reconstruct::ReconstructSummary =
        brainrecon_core::fs::read_json(
            &args
                .reconstructed
                .join(brainrecon_routes::video::reconstruct::SUMMARY),
        )?;
    let classifiers = VideoClassifiers::load(
        args.vit.as_deref(),
        args.videomae.as_deref(),
        made.frames,
        &args.device.device()?,
    )?;
    let summary = evaluate(&opts, &classifiers)?;
    let page = write_report(&summary, &args.stimuli, made.fps, &args.out)?;
    if args.json.json {
        return print_json(&summary);
    }
    for (name, score) in [
        ("2-way-I (ViT)", &summary.two_way_i),
        ("2-way-V (VideoMAE)", &summary.two_way_v),
        ("50-way-V (VideoMAE)", &summary.fifty_way_v),
    ] {
        if let Some(s) = score {
            outln!("{name}: {:.3} (chance {:.3})", s.value, s.chance)?;
        }
    }
    outln!(
        "{} clips: 2-way {:.3} (chance {:.3}; quoted {:.2}), motion direction {:.3} (chance \
         {:.2}), colour {:.3}, shape {:.3}, SSIM {:.3}, PSNR {:.2} → {}",
        summary.clips,
        summary.two_way.value,
        summary.two_way.chance,
        summary.nominal_chance_two_way,
        summary.direction.value,
        summary.direction.chance,
        summary.colour.value,
        summary.shape.value,
        summary.ssim,
        summary.psnr,
        page.display()
    )?;
    print_breakdown(&summary.breakdown)
}

/// The scores per segment and per position in it, one line a group.
fn print_breakdown(groups: &[GroupScores]) -> anyhow::Result<()> {
    outln!("  clips of         TRs  clips  2-way  direction  colour  shape")?;
    for g in groups {
        outln!(
            "  {:<14} {:>2}–{:<2} {:>6}  {:.3}  {:>9.3}  {:.3}  {:.3}",
            g.group,
            g.first_tr,
            g.last_tr,
            g.clips,
            g.two_way,
            g.direction,
            g.colour,
            g.shape
        )?;
    }
    Ok(())
}
