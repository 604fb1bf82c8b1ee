use crate::commands::prelude::*;
use brainrecon_routes::decode::decoders::{fit_request, FitRequest};

/// Fit a ridge decoder from an ROI's betas to per-image targets of a prepared subject.
///
/// Targets: `z` (VAE latents) and `c` (CLIP text context) from `brainrecon features`, also
/// `clip-image`; `blip` (BLIP's image tokens, the caption route: by default from the six
/// `streams` ROIs early, ventral, midventral, midlateral, lateral and parietal with the
/// published alphas 1e4, 2e4, 4e4), `blip-vision-lL`, `blip-text[-lL]`; `pixels:SIZE` (the stimuli resized to SIZE×SIZE×3 in [0, 1]); or a float
/// `.npy` (n_images, d) whose rows follow the subject's stimuli/ids.npy.
///
/// For z and c the defaults follow the published linear route (Takagi & Nishimoto 2023):
/// z from streams/early, c from streams/ventral, standardised betas, 5-fold CV with folds
/// grouped by stimulus (repeats of an image never straddle training and validation), one
/// alpha per target, here from 21 values over 1e-1 … 1e9. One difference: an intercept is
/// fitted. The published code fits none, which works with its small grid (1e-6 … 1); with a
/// grid wide enough to choose from, cross-validation then drives alpha to the grid's top,
/// because the targets' mean cannot be fitted (`--no-intercept` reproduces it).
///
/// It prints the CV R² and the test Pearson r over targets, saves per-target test r
/// (test_r.npy), and warns when many targets chose an alpha at the grid's edge.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon fit --subject prepared/subj01 --target z --out decoders/z\n  brainrecon fit --subject prepared/subj01 --target c --out decoders/c\n  brainrecon fit --subject prepared/subj01 --roi nsdgeneral --target pixels:32 --out models/pixels"
)]
#[command(mut_arg("device", |a| a.help("cpu, cuda or cuda:N: where the ridge fit runs (a GPU fits --cv gcv or loo)")))]
#[command(mut_arg("json", |a| a.help("Print the fit summary as JSON")))]
pub struct Args {
    #[command(flatten)]
    request: FitRequest,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let summary = fit_request(&args.request, &mut |warning| {
        eprintln!("warning: {warning}")
    })?;
    super::report(args.json.json, &summary, |_| summary.text())
}
