//! `brainrecon encode`: an encoding model (features → voxels) with a permutation test and FDR,
//! joint models of several feature sets with their unique variance; `brainrecon encode layers`:
//! the same for every layer of a network's features (the work is in
//! `brainrecon_routes::encoding`).

mod layers;
pub mod runs;

use crate::commands::prelude::*;
use brainrecon_routes::encoding::job::{
    check_unique, encode, parse_feature_sets, EncodeOptions, FitRequest,
};
use std::time::Instant;

/// Fit an encoding model from per-image features to an ROI's voxels and test it.
///
/// Ridge maps the features to every voxel on the train split (one alpha per voxel, K-fold
/// folds grouped by stimulus), predicts the test split (betas averaged over repeats) and
/// scores each voxel by the Pearson r between prediction and measurement.
///
/// Features: a FEATURES.npy, `pixels:SIZE`, or features computed by `brainrecon features`,
/// by name (z, c, clip-image, blip, blip-vision-lL, blip-text-lL; read from the subject's
/// features directory). Several sets (`--features A --features B`, or `A+B`) make a joint
/// model of the sets side by side; each set is then z-scored (mean and std over the training
/// images) and scaled by 1/sqrt(its width), so that every set carries the same total variance
/// and one alpha per voxel serves them all (`--standardize` does the same for one set).
/// `--unique` (two sets A and B) also fits A alone and B alone and writes the variance each
/// explains beyond the other: r2 = r·|r| of the test predictions, unique_a = r2_joint − r2_b,
/// unique_b = r2_joint − r2_a.
///
/// Features wider than there are training images (BLIP's image tokens: 226 × 768 = 173k
/// columns) are first replaced by their principal-component scores over the training images,
/// which changes no prediction (ridge sees only inner products with training images) and
/// leaves at most one column per training image; `--pca K` keeps only the top K components.
///
/// Significance: the test rows of the predictions are permuted (in contiguous blocks of
/// --block-size rows; 1 = plain rows) and correlated with the measured betas, without
/// refitting. The one-sided p-value is (1 + #{null r ≥ r}) / (1 + permutations); voxels
/// with an undefined r (a constant column) get p = 1. Benjamini–Hochberg q-values are as
/// statsmodels `fdrcorrection(p, 0.05, "indep")`; a voxel is significant where BH rejects
/// (q ≤ 0.05).
///
/// Writes to --out: r.npy, p.npy, q.npy (float64, one per ROI voxel, in the ROI's column
/// order); r.nii.gz, neglog10p.nii.gz and significant.nii.gz (float32, the subject's volume
/// and affine; 0 outside the ROI and where r is undefined); with --unique r2_joint, r2_a,
/// r2_b, unique_a, unique_b (.npy and .nii.gz); summary.json (the ROI and every atlas label
/// that overlaps it: voxels, mean and median r, number and fraction significant).
#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Example:\n  brainrecon encode --subject prepared/subj01 --features pixels:8 --roi nsdgeneral --out encoding/pixels\n  brainrecon encode --subject prepared/subj01 --features clip.npy --permutations 5000 --out encoding/clip\n  brainrecon encode --subject prepared/subj01 --features blip-vision-l6+blip-text-l6 --unique --pca 1024 --out encoding/blip-l6\n  brainrecon encode layers --subject prepared/subj01 --kind blip-vision --layers all --out encoding/blip-vision"
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<EncodeCommand>,
    /// A prepared subject directory
    #[arg(long, required = true)]
    subject: Option<PathBuf>,
    /// FEATURES.npy (float, (n_images, d), rows following stimuli/ids.npy), pixels:SIZE, or
    /// computed features by name (z, c, clip-image, blip, blip-vision-lL, blip-text-lL);
    /// repeat, or join with +, for a joint model
    #[arg(long, required = true)]
    features: Vec<String>,
    /// ROI: an atlas (nsdgeneral), atlas/label (streams/early) or a unique label (V1v)
    #[arg(long, default_value = "nsdgeneral")]
    roi: String,
    /// Output directory
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// With two feature sets A and B: also fit each alone and write their unique variance
    #[arg(long)]
    unique: bool,
    /// z-score one feature set and scale it by 1/sqrt(width) (always done for several sets)
    #[arg(long)]
    standardize: bool,
    #[command(flatten)]
    fit: FitArgs,
    #[command(flatten)]
    json: JsonArg,
}

#[derive(clap::Subcommand)]
enum EncodeCommand {
    Layers(layers::Args),
}

/// Options shared by `encode` and `encode layers`: the fit, the null and the design.
#[derive(clap::Args)]
#[command(mut_arg("device", |a| a.help(
    "cpu, cuda or cuda:N: where the ridge fit runs (a GPU fits --cv gcv or loo)"
)))]
pub struct FitArgs {
    /// Directory of the features named by kind (default: SUBJECT/features)
    #[arg(long)]
    features_dir: Option<PathBuf>,
    /// Keep only the top K principal components of the features (over the training images)
    #[arg(long)]
    pca: Option<usize>,
    /// Number of permutations of the test rows in the null
    #[arg(long, default_value_t = 1000)]
    permutations: usize,
    /// Test rows permuted together as one block (1 = plain row permutation)
    #[arg(long, default_value_t = 1)]
    block_size: usize,
    /// Seed of the permutations (ChaCha8)
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Alpha grid, comma-separated (default: 10 values log-spaced over 1 … 1e6)
    #[arg(long, value_delimiter = ',')]
    alphas: Option<Vec<f64>>,
    /// `loo` (efficient leave-one-out), `gcv` (generalized cross-validation) or the number of
    /// folds grouped by stimulus
    #[arg(long, default_value = "5")]
    cv: String,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    cortex: crate::args::CortexArg,
}

impl FitArgs {
    /// The fit and null settings (checked against the data by the library).
    fn request(&self) -> anyhow::Result<FitRequest> {
        Ok(FitRequest {
            features_dir: self.features_dir.clone(),
            pca: self.pca,
            permutations: self.permutations,
            block_size: self.block_size,
            seed: self.seed,
            alphas: self.alphas.clone(),
            cv: self.cv.clone(),
            device: self.device.ridge()?,
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(EncodeCommand::Layers(layer_args)) = args.command {
        return layers::run(layer_args);
    }
    let (Some(subject_dir), Some(out)) = (args.subject, args.out) else {
        return Err(usage("--subject and --out are required"));
    };
    let fit = args.fit.request()?;
    fit.check()?;
    let started = Instant::now();
    let targets = parse_feature_sets(&args.features)?;
    check_unique(args.unique, &targets)?;
    let opts = EncodeOptions {
        subject_dir,
        targets,
        roi: args.roi,
        out,
        unique: args.unique,
        standardize: args.standardize,
        cortex: args.fit.cortex.choice()?,
        fit,
    };
    let encoded = encode(&opts)?;
    let seconds = started.elapsed().as_secs_f64();
    report(args.json.json, &encoded.json(&opts.out, seconds), |_| {
        encoded.text(&opts, seconds)
    })
}
