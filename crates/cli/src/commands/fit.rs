use super::usage;
use crate::args::{DeviceArgs, JsonArg};
use brainrecon_data::prepared::PreparedSubject;
use brainrecon_routes::decoders::{
    default_alphas, default_features_dir, fit_decoder, DecoderCv, DecoderSpec, Target,
};
use std::path::PathBuf;

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
    #[arg(long, default_value = "f64")]
    precision: super::ridge::PrecisionArg,
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
    let subject = PreparedSubject::open(&args.subject)?;
    let target = Target::parse(&args.target)?;
    let published = target.is_model_feature();
    let cv = DecoderCv::parse(&args.cv).ok_or_else(|| {
        usage(format!(
            "--cv: expected loo, gcv or a number of folds ≥ 2, found '{}'",
            args.cv
        ))
    })?;
    let device = args.device.ridge()?;
    if device != brainrecon_ridge::Device::Cpu && matches!(cv, DecoderCv::KFold(_)) {
        return Err(usage(format!(
            "--device {}: K-fold cross-validation runs on the CPU only; use --cv gcv or --cv loo on a GPU",
            args.device.name()
        )));
    }
    if args.target_block == Some(0) {
        return Err(usage("--target-block: expected at least 1 target"));
    }
    if args.target_block.is_some() && device != brainrecon_ridge::Device::Cpu {
        return Err(usage(format!(
            "--target-block: fits a block of targets at a time on the CPU only, not --device {}",
            args.device.name()
        )));
    }
    let roi = match &args.roi {
        Some(roi) => roi.clone(),
        None => {
            let (roi, missing) = target.default_roi_on(&subject);
            if !missing.is_empty() {
                eprintln!(
                    "warning: {} not in this subject; decoding from {roi}",
                    missing.join(", ")
                );
            }
            roi
        }
    };
    let spec = DecoderSpec {
        roi,
        alphas: args
            .alphas
            .clone()
            .unwrap_or_else(|| default_alphas(&target)),
        features_dir: args
            .features
            .clone()
            .unwrap_or_else(|| default_features_dir(&subject)),
        target,
        cv,
        standardize: if published {
            !args.no_standardize
        } else {
            args.standardize
        },
        intercept: !args.no_intercept,
        average_train: args.average_train,
        device,
        precision: args.precision.into(),
        target_block: args.target_block,
    };
    let summary = fit_decoder(&subject, &spec, &args.out)?;
    if let Some(warning) = summary.edge_warning() {
        eprintln!("warning: {warning}");
    }
    if args.json.json {
        return super::print_json(&summary);
    }
    outln!(
        "fitted {} voxels of {} → {} targets {:?} on {} rows in {:.1} s (median alpha {:.3e})",
        summary.n_voxels,
        summary.roi,
        summary.n_targets,
        summary.target_shape,
        summary.n_train_rows,
        summary.seconds,
        summary.median_alpha,
    )?;
    outln!(
        "per-target CV R²: mean {:.4}, median {:.4}; test Pearson r on {} images: mean {:.4}, \
         median {:.4}",
        summary.cv_r2_mean,
        summary.cv_r2_median,
        summary.n_test,
        summary.test_r_mean,
        summary.test_r_median
    )?;
    outln!(
        "saved {} (per-target test r in {})",
        args.out.display(),
        args.out
            .join(brainrecon_routes::decoders::TEST_R_FILE)
            .display()
    )?;
    Ok(())
}
