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
    /// A prepared subject directory
    #[arg(long)]
    subject: PathBuf,
    /// z, c, clip-image, blip, pixels:SIZE, or FEATURES.npy with one row per subject image
    #[arg(long)]
    target: String,
    /// ROI: an atlas (nsdgeneral), atlas/label (streams/early) or a unique label (V1v).
    /// Default: streams/early for z, streams/ventral for c and clip-image, else nsdgeneral
    #[arg(long)]
    roi: Option<String>,
    /// Decoder directory to write (weights.safetensors, model.json, test_r.npy)
    #[arg(long)]
    out: PathBuf,
    /// Features directory of `brainrecon features` (default: SUBJECT/features)
    #[arg(long)]
    features: Option<PathBuf>,
    /// Alpha grid, comma-separated
    #[arg(long, value_delimiter = ',')]
    alphas: Option<Vec<f64>>,
    /// `loo` (efficient leave-one-out), `gcv` (generalized cross-validation: no
    /// eigendecomposition when voxels outnumber trials, up to 3× faster there) or the
    /// number of folds grouped by stimulus
    #[arg(long, default_value = "5")]
    cv: String,
    /// Train on betas averaged over repeats (needs `nsd prepare --average-train`)
    #[arg(long)]
    average_train: bool,
    /// Scale each voxel to unit variance inside the model (default for z, c, clip-image)
    #[arg(long, overrides_with = "no_standardize")]
    standardize: bool,
    /// Do not scale voxels
    #[arg(long)]
    no_standardize: bool,
    /// Fit no intercept (as the published code; the targets' mean is then not predicted)
    #[arg(long)]
    no_intercept: bool,
    #[command(flatten)]
    device: DeviceArgs,
    /// Precision of the Gram matrix and its eigendecomposition: f64, or f32 (about 2× faster on
    /// the CPU)
    #[arg(long, default_value = "f64", value_parser = super::ridge::precision_parser())]
    precision: brainrecon_ridge::Precision,
    /// Fit N targets at a time, reading their columns from the features file and writing their
    /// weights as they come, so that neither all targets nor all weights are in memory (CPU).
    /// Default: all at once, or 8192 at a time when the targets exceed 1 GiB (c on a full NSD
    /// subject)
    #[arg(long)]
    target_block: Option<usize>,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let request = FitRequest {
        subject: args.subject,
        target: args.target,
        roi: args.roi,
        out: args.out,
        features: args.features,
        alphas: args.alphas,
        cv: args.cv,
        average_train: args.average_train,
        standardize: args.standardize,
        no_standardize: args.no_standardize,
        intercept: !args.no_intercept,
        device: args.device.choice()?,
        precision: args.precision,
        target_block: args.target_block,
    };
    let summary = fit_request(&request, &mut |warning| eprintln!("warning: {warning}"))?;
    super::report(args.json.json, &summary, |_| summary.text())
}
