//! `brainrecon music fit`: music embeddings decoded from the fMRI of 10-s windows.

use crate::commands::prelude::*;
use brainrecon_routes::music::{fit_music, MusicFitOptions};

/// Decode music embeddings of 10-s windows from the fMRI inside them (Brain2Music): one ridge
/// model per atlas ROI (alpha by K-fold CV over clips), the best ROIs' predictions averaged,
/// scored by identification accuracy on the test clips (chance 0.5).
///
/// Windows: each clip of the events (genre, track, start; ds003720's columns) is cut into
/// windows of --window seconds advanced --step; a window's target is the embedding of its
/// audio (clap-audio, encodec) or of its clip's caption (clap-text), its fMRI the mean of the
/// scans acquired inside it (shifted by --delay), test clips averaged over their repeats.
///
/// Every input (run set, model, the tracks the events name, atlas, captions) is checked before
/// the first window is embedded, and every problem is reported at once (exit 2). A clip may
/// end up to 0.1 s past the end of its track (its tail is then silence); further is refused.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon simulate --kind music --out sim-music\n  \
    brainrecon bids prepare --bids-root sim-music --subject 001 --task Training --task Test --mask sim-music/derivatives/mask/sub-001_mask.nii.gz --out runs-music\n  \
    brainrecon music fit --runs runs-music --stimuli sim-music/stimuli/genres --atlas sim-music/derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz --out music-fit"
)]
pub struct Args {
    #[command(flatten)]
    options: MusicFitOptions,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = MusicFitOptions {
        progress: show_progress(),
        ..args.options
    };
    let summary = fit_music(&opts, &args.device.device()?)?;
    report(args.json.json, &summary, |_| summary.text(&opts.out))
}
