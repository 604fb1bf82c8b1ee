//! `brainrecon encode`: an encoding model (features → voxels) with a permutation test and FDR,
//! joint models of several feature sets with their unique variance; `brainrecon encode layers`:
//! the same for every layer of a network's features.

mod layers;

use super::usage;
use brainrecon_data::prepared::PreparedSubject;
use brainrecon_routes::decoders::{default_features_dir, standard_alphas, DecoderCv, Target};
use brainrecon_routes::encoding::{
    build_design, fit_predict, load_block, roi_coordinates, score, signed_r2, test_r, voxel_sets,
    write_stats, write_values, DesignOptions, EncodingData, FeatureBlock, FitOptions, RoiSummary,
    VoxelSet, VoxelStats, FDR_ALPHA,
};
use serde::Serialize;
use std::path::{Path, PathBuf};
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
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum EncodeCommand {
    Layers(layers::Args),
}

/// Options shared by `encode` and `encode layers`: the fit, the null and the design.
#[derive(clap::Args)]
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
    /// cpu, cuda or cuda:N: where the ridge fit runs (a GPU fits --cv gcv or loo)
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl FitArgs {
    /// Checks the options that need no data.
    fn check(&self) -> anyhow::Result<()> {
        if self.permutations == 0 {
            return Err(usage(
                "--permutations: expected at least 1 (1000 or more for p-values near 0.001), found 0",
            ));
        }
        if self.block_size == 0 {
            return Err(usage("--block-size: expected at least 1, found 0"));
        }
        if self.pca == Some(0) {
            return Err(usage("--pca: expected at least 1 component, found 0"));
        }
        Ok(())
    }

    fn features_dir(&self, subject: &PreparedSubject) -> PathBuf {
        self.features_dir
            .clone()
            .unwrap_or_else(|| default_features_dir(subject))
    }

    /// The fit and null settings for `data` (the block size must leave ≥ 2 blocks).
    fn options(&self, data: &EncodingData) -> anyhow::Result<FitOptions> {
        let n_test = data.test.rows;
        let n_blocks = n_test.div_ceil(self.block_size);
        if n_blocks < 2 {
            return Err(usage(format!(
                "--block-size: {n_test} test images make {n_blocks} block of {}; expected at most {}",
                self.block_size,
                n_test / 2
            )));
        }
        let cv = DecoderCv::parse(&self.cv).ok_or_else(|| {
            usage(format!(
                "--cv: expected loo, gcv or a number of folds (at least 2), found '{}'",
                self.cv
            ))
        })?;
        let device = super::ridge::ridge_device(&self.device)?;
        if device != brainrecon_ridge::Device::Cpu && matches!(cv, DecoderCv::KFold(_)) {
            return Err(usage(format!(
                "--device {}: K-fold cross-validation runs on the CPU only; use --cv gcv or --cv loo on a GPU",
                self.device
            )));
        }
        Ok(FitOptions {
            alphas: self.alphas.clone().unwrap_or_else(standard_alphas),
            cv,
            device,
            permutations: self.permutations,
            block_size: self.block_size,
            seed: self.seed,
        })
    }
}

/// The feature sets named by `--features` (each may join several with +).
fn parse_features(texts: &[String]) -> anyhow::Result<Vec<Target>> {
    texts
        .iter()
        .flat_map(|text| text.split('+'))
        .map(|part| {
            Target::parse(part).map_err(|_| {
                usage(format!(
                    "--features: expected FEATURES.npy, pixels:SIZE, z, c, clip-image, blip, \
                     blip-vision-lL or blip-text-lL, found '{part}'"
                ))
            })
        })
        .collect()
}

/// A fitted model's design and test predictions.
pub struct Fitted {
    pub n_features: usize,
    pub width: usize,
    pub reduction: Option<brainrecon_routes::encoding::Reduction>,
    pub predicted: Vec<f32>,
}

/// Builds the design of `blocks` and fits it.
pub fn fit_blocks(
    data: &EncodingData,
    blocks: &[&FeatureBlock],
    options: DesignOptions,
    fit: &FitOptions,
) -> anyhow::Result<Fitted> {
    let design = build_design(blocks, &data.train_images(), options)?;
    let predicted = fit_predict(data, &design, fit)?;
    Ok(Fitted {
        n_features: design.n_features,
        width: design.width,
        reduction: design.reduction,
        predicted,
    })
}

/// Per-ROI means of the unique-variance maps.
#[derive(Serialize)]
struct UniqueRow {
    roi: String,
    r2_joint: f64,
    r2_a: f64,
    r2_b: f64,
    unique_a: f64,
    unique_b: f64,
}

/// A and B alone: writes r2_* and unique_* and returns their per-ROI means.
fn unique_variance(
    ctx: &Context,
    blocks: &[FeatureBlock],
    options: DesignOptions,
    joint_r: &[f64],
) -> anyhow::Result<serde_json::Value> {
    let mut r2 = Vec::new();
    for block in blocks {
        let alone = fit_blocks(&ctx.data, &[block], options, &ctx.fit)?;
        r2.push(signed_r2(&test_r(&ctx.data, &alone.predicted)?));
    }
    let r2_joint = signed_r2(joint_r);
    let minus =
        |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(a, b)| a - b).collect() };
    let maps = [
        ("r2_joint", r2_joint.clone()),
        ("r2_a", r2[0].clone()),
        ("r2_b", r2[1].clone()),
        ("unique_a", minus(&r2_joint, &r2[1])),
        ("unique_b", minus(&r2_joint, &r2[0])),
    ];
    for (name, values) in &maps {
        write_values(ctx.out, name, &ctx.subject, &ctx.coords, values)?;
    }
    let rows: Vec<UniqueRow> = ctx
        .sets
        .iter()
        .map(|set| UniqueRow {
            roi: set.name.clone(),
            r2_joint: set.mean_of(&maps[0].1),
            r2_a: set.mean_of(&maps[1].1),
            r2_b: set.mean_of(&maps[2].1),
            unique_a: set.mean_of(&maps[3].1),
            unique_b: set.mean_of(&maps[4].1),
        })
        .collect();
    Ok(serde_json::json!({
        "a": blocks[0].name,
        "b": blocks[1].name,
        "r2": "r·|r| of the test predictions (A and B each standardised and fit alone, same alphas and folds)",
        "rois": rows,
    }))
}

/// What every step of one run shares.
struct Context<'a> {
    subject: PreparedSubject,
    data: EncodingData,
    fit: FitOptions,
    coords: Vec<[usize; 3]>,
    sets: Vec<VoxelSet>,
    out: &'a Path,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(EncodeCommand::Layers(layer_args)) = args.command {
        return layers::run(layer_args);
    }
    let (Some(subject_dir), Some(out)) = (args.subject.as_deref(), args.out.as_deref()) else {
        return Err(usage("--subject and --out are required"));
    };
    args.fit.check()?;
    let started = Instant::now();
    let targets = parse_features(&args.features)?;
    if args.unique && targets.len() != 2 {
        return Err(usage(format!(
            "--unique: expected two feature sets (--features A --features B), found {}",
            targets.len()
        )));
    }
    let subject = PreparedSubject::open(subject_dir)?;
    let features_dir = args.fit.features_dir(&subject);
    let blocks = targets
        .iter()
        .map(|t| load_block(&subject, t, &features_dir))
        .collect::<Result<Vec<_>, _>>()?;
    let data = EncodingData::load(&subject, &args.roi)?;
    let fit = args.fit.options(&data)?;
    let coords = roi_coordinates(&subject, &data.roi)?;
    let sets = voxel_sets(&subject, &data.roi, &coords, None)?;
    let ctx = Context {
        subject,
        data,
        fit,
        coords,
        sets,
        out,
    };
    let options = DesignOptions {
        standardize: args.standardize || blocks.len() > 1,
        pca: args.fit.pca,
    };

    let fit_started = Instant::now();
    let refs: Vec<&FeatureBlock> = blocks.iter().collect();
    let joint = fit_blocks(&ctx.data, &refs, options, &ctx.fit)?;
    let fit_seconds = fit_started.elapsed().as_secs_f64();
    // The null never refits: standardise once, then each permutation is a gather + dots.
    let null_started = Instant::now();
    let stats = score(&ctx.data, &joint.predicted, &ctx.fit)?;
    let null_seconds = null_started.elapsed().as_secs_f64();
    let unique = if args.unique {
        Some(unique_variance(&ctx, &blocks, options, &stats.r)?)
    } else {
        None
    };
    let rois: Vec<RoiSummary> = ctx.sets.iter().map(|s| s.summarize(&stats)).collect();
    let features_text = blocks
        .iter()
        .map(|b| b.name.as_str())
        .collect::<Vec<_>>()
        .join("+");
    let mut summary = serde_json::json!({
        "subject": ctx.subject.meta.subject,
        "subject_dir": subject_dir,
        "roi": ctx.data.roi.name,
        "features": features_text,
        "feature_sets": blocks.iter().map(|b| serde_json::json!({
            "name": b.name, "source": b.targets.source, "model": b.targets.model,
            "shape": b.targets.shape,
        })).collect::<Vec<_>>(),
        "n_features": joint.n_features,
        "design": {"standardized": options.standardize, "columns": joint.width, "reduction": joint.reduction},
        "n_train_rows": ctx.data.train.rows,
        "n_test_images": ctx.data.test.rows,
        "cv": args.fit.cv,
        "permutations": ctx.fit.permutations,
        "block_size": ctx.fit.block_size,
        "seed": ctx.fit.seed,
        "p_value": "one-sided: (1 + #{null r >= r}) / (1 + permutations), null = test rows of the predictions permuted",
        "fdr": {"method": "Benjamini-Hochberg (statsmodels fdrcorrection, indep)", "alpha": FDR_ALPHA},
        "rois": rois,
        "seconds": {"fit": fit_seconds, "permutations": null_seconds},
    });
    if let Some(unique) = unique {
        summary["unique"] = unique;
    }
    write_outputs(&ctx, &stats, &summary)?;
    report(
        &args,
        &ctx,
        &rois,
        &features_text,
        joint.n_features,
        summary,
        started,
    )
}

/// The maps, then summary.json last: a complete summary.json marks a complete directory.
fn write_outputs(
    ctx: &Context,
    stats: &VoxelStats,
    summary: &serde_json::Value,
) -> anyhow::Result<()> {
    write_stats(ctx.out, &ctx.subject, &ctx.coords, stats)?;
    brainrecon_data::atomic::write_json_atomic(&ctx.out.join("summary.json"), summary)?;
    Ok(())
}

fn report(
    args: &Args,
    ctx: &Context,
    rois: &[RoiSummary],
    features_text: &str,
    width: usize,
    summary: serde_json::Value,
    started: Instant,
) -> anyhow::Result<()> {
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let mut printed = summary;
        printed["out"] = serde_json::json!(ctx.out);
        printed["seconds"]["total"] = serde_json::json!(seconds);
        return super::print_json(&printed);
    }
    outln!(
        "encoded {} voxels of {} from {} ({} features) on {} train rows; {} test images, {} permutations (blocks of {}) in {:.1} s; wrote {}",
        ctx.data.roi.n_voxels,
        ctx.data.roi.name,
        features_text,
        width,
        ctx.data.train.rows,
        ctx.data.test.rows,
        ctx.fit.permutations,
        ctx.fit.block_size,
        seconds,
        ctx.out.display()
    )?;
    print_rois(rois)?;
    Ok(())
}

/// The per-ROI table of `encode` and `encode layers`.
pub fn print_rois(rois: &[RoiSummary]) -> anyhow::Result<()> {
    outln!(
        "{:<32} {:>7} {:>8} {:>8} {:>20}",
        "roi",
        "voxels",
        "mean r",
        "median r",
        "significant (q≤0.05)"
    )?;
    for row in rois {
        outln!(
            "{:<32} {:>7} {:>8.3} {:>8.3} {:>11} ({:>5.1}%)",
            row.roi,
            row.n_voxels,
            row.mean_r,
            row.median_r,
            row.n_significant,
            100.0 * row.fraction_significant
        )?;
    }
    Ok(())
}
