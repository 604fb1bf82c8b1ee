//! The whole of `brainrecon encode`: open the subject, load the feature sets, fit the joint
//! model, run the permutation null, (optionally) the unique variance of two sets, and write
//! the maps and summary.json.

use super::{
    build_design, cortex_for, fit_predict, load_block, roi_coordinates, score, signed_r2, test_r,
    voxel_sets, write_stats, write_values, DesignOptions, EncodingData, FeatureBlock, FitOptions,
    Reduction, RoiLabels, RoiSummary, VoxelSet, FDR_ALPHA,
};
use crate::decode::decoders::{default_features_dir, standard_alphas, DecoderCv, Target};
use crate::error::{Result, RouteError};
use brainrecon_core::fs::write_json_atomic;
use brainrecon_cortex::report::{write_cortex_maps, MapKind, VoxelMapSpec};
use brainrecon_datasets::prepared::PreparedSubject;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn usage(message: impl Into<String>) -> RouteError {
    RouteError::Usage(message.into())
}

/// The fit, the null and the design, shared by `encode` and `encode layers`.
#[derive(Debug, Clone)]
pub struct FitRequest {
    /// Folder of the features named by kind (default: the subject's features folder).
    pub features_dir: Option<PathBuf>,
    /// Keep only the top K principal components of the features.
    pub pca: Option<usize>,
    /// Permutations of the test rows in the null.
    pub permutations: usize,
    /// Test rows permuted together as one block.
    pub block_size: usize,
    /// Seed of the permutations.
    pub seed: u64,
    /// The alpha grid (default: the standard one).
    pub alphas: Option<Vec<f64>>,
    /// `loo`, `gcv` or a number of folds grouped by stimulus.
    pub cv: String,
    /// Where the ridge fit runs.
    pub device: brainrecon_ridge::Device,
}

impl FitRequest {
    /// Checks the options that need no data.
    pub fn check(&self) -> Result<()> {
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

    /// The folder the named features are read from.
    pub fn features_dir(&self, subject: &PreparedSubject) -> PathBuf {
        self.features_dir
            .clone()
            .unwrap_or_else(|| default_features_dir(subject))
    }

    /// The fit and null settings for `data` (the block size must leave ≥ 2 blocks).
    pub fn options(&self, data: &EncodingData) -> Result<FitOptions> {
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
        if self.device != brainrecon_ridge::Device::Cpu && matches!(cv, DecoderCv::KFold(_)) {
            return Err(usage(format!(
                "--device {}: K-fold cross-validation runs on the CPU only; use --cv gcv or --cv loo on a GPU",
                self.device
            )));
        }
        Ok(FitOptions {
            alphas: self.alphas.clone().unwrap_or_else(standard_alphas),
            cv,
            device: self.device,
            permutations: self.permutations,
            block_size: self.block_size,
            seed: self.seed,
        })
    }
}

/// A fitted model's design and test predictions.
pub struct Fitted {
    /// Feature columns before any reduction.
    pub n_features: usize,
    /// Columns of the design.
    pub width: usize,
    /// The principal-component reduction, when the features were reduced.
    pub reduction: Option<Reduction>,
    /// Test predictions, (test images, voxels) row-major.
    pub predicted: Vec<f32>,
}

/// Builds the design of `blocks` and fits it.
pub fn fit_blocks(
    data: &EncodingData,
    blocks: &[&FeatureBlock],
    options: DesignOptions,
    fit: &FitOptions,
) -> Result<Fitted> {
    let design = build_design(blocks, &data.train_images(), options)?;
    let predicted = fit_predict(data, &design, fit)?;
    Ok(Fitted {
        n_features: design.n_features,
        width: design.width,
        reduction: design.reduction,
        predicted,
    })
}

/// One `brainrecon encode` run.
pub struct EncodeOptions {
    /// The prepared subject.
    pub subject_dir: PathBuf,
    /// The feature sets (several: a joint model).
    pub targets: Vec<Target>,
    /// The ROI: an atlas, atlas/label or a unique label.
    pub roi: String,
    /// The output folder.
    pub out: PathBuf,
    /// With two sets: also fit each alone and write their unique variance.
    pub unique: bool,
    /// z-score one set and scale it by 1/sqrt(width) (always done for several).
    pub standardize: bool,
    /// The fit and the null.
    pub fit: FitRequest,
    /// Where the maps are drawn on the cortex (OUT/cortex/; `auto`: a simulation's on
    /// fsaverage5).
    pub cortex: brainrecon_cortex::report::CortexChoice,
}

/// What [`encode`] wrote, for the summary line.
pub struct EncodeReport {
    /// summary.json's content.
    pub summary: serde_json::Value,
    /// Per-ROI rows (the ROI and the atlas labels overlapping it).
    pub rois: Vec<RoiSummary>,
    /// The sets' names joined with +.
    pub features: String,
    /// Feature columns of the joint model.
    pub n_features: usize,
    /// The ROI's name and voxels.
    pub roi: (String, usize),
    /// Training rows and test images.
    pub rows: (usize, usize),
}

impl EncodeReport {
    /// summary.json's content with the output folder and the command's wall time (s) added,
    /// as `encode --json` prints it.
    pub fn json(&self, out: &Path, seconds: f64) -> serde_json::Value {
        let mut printed = self.summary.clone();
        printed["out"] = serde_json::json!(out);
        printed["seconds"]["total"] = serde_json::json!(seconds);
        printed
    }

    /// The summary line and the per-ROI table as `encode` prints them; `seconds` is the
    /// command's wall time.
    pub fn text(&self, opts: &EncodeOptions, seconds: f64) -> String {
        format!(
            "encoded {} voxels of {} from {} ({} features) on {} train rows; {} test images, {} permutations (blocks of {}) in {:.1} s; wrote {}\n{}",
            self.roi.1,
            self.roi.0,
            self.features,
            self.n_features,
            self.rows.0,
            self.rows.1,
            opts.fit.permutations,
            opts.fit.block_size,
            seconds,
            opts.out.display(),
            super::roi_table(&self.rois)
        )
    }
}

/// The feature sets `encode --features` names (each text may join several with +).
pub fn parse_feature_sets(texts: &[String]) -> Result<Vec<Target>> {
    texts
        .iter()
        .flat_map(|text| text.split('+'))
        .map(|part| {
            Target::parse(part).map_err(|_| {
                RouteError::Usage(format!(
                    "--features: expected FEATURES.npy, pixels:SIZE, z, c, clip-image, blip, \
                     blip-vision-lL or blip-text-lL, found '{part}'"
                ))
            })
        })
        .collect()
}

/// Refuses `--unique` unless there are exactly two feature sets.
pub fn check_unique(unique: bool, targets: &[Target]) -> Result<()> {
    if unique && targets.len() != 2 {
        return Err(RouteError::Usage(format!(
            "--unique: expected two feature sets (--features A --features B), found {}",
            targets.len()
        )));
    }
    Ok(())
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

/// What every step of one run shares.
struct Context<'a> {
    subject: PreparedSubject,
    data: EncodingData,
    fit: FitOptions,
    coords: Vec<[usize; 3]>,
    sets: Vec<VoxelSet>,
    out: &'a Path,
}

/// A and B alone: writes r2_* and unique_* and returns their per-ROI means.
fn unique_variance(
    ctx: &Context,
    blocks: &[FeatureBlock],
    options: DesignOptions,
    joint_r: &[f64],
) -> Result<serde_json::Value> {
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

/// Fits the encoding model and writes r, p, q (.npy and NIfTI maps), the unique variance when
/// asked, and summary.json last (a complete summary.json marks a complete folder).
pub fn encode(opts: &EncodeOptions) -> Result<EncodeReport> {
    let subject = PreparedSubject::open(&opts.subject_dir)?;
    let features_dir = opts.fit.features_dir(&subject);
    let blocks = opts
        .targets
        .iter()
        .map(|t| load_block(&subject, t, &features_dir))
        .collect::<Result<Vec<_>>>()?;
    let data = EncodingData::load(&subject, &opts.roi)?;
    let fit = opts.fit.options(&data)?;
    let coords = roi_coordinates(&subject, &data.roi)?;
    let sets = voxel_sets(&subject, &data.roi, &coords, None)?;
    let ctx = Context {
        subject,
        data,
        fit,
        coords,
        sets,
        out: &opts.out,
    };
    let options = DesignOptions {
        standardize: opts.standardize || blocks.len() > 1,
        pca: opts.fit.pca,
    };

    let fit_started = Instant::now();
    let refs: Vec<&FeatureBlock> = blocks.iter().collect();
    let joint = fit_blocks(&ctx.data, &refs, options, &ctx.fit)?;
    let fit_seconds = fit_started.elapsed().as_secs_f64();
    // The null never refits: standardise once, then each permutation is a gather + dots.
    let null_started = Instant::now();
    let stats = score(&ctx.data, &joint.predicted, &ctx.fit)?;
    let null_seconds = null_started.elapsed().as_secs_f64();
    let unique = if opts.unique {
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
        "subject_dir": opts.subject_dir,
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
        "cv": opts.fit.cv,
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
    write_stats(ctx.out, &ctx.subject, &ctx.coords, &stats)?;
    if let Some((placed, labels)) = cortex_for(&ctx.subject, &ctx.coords, &opts.cortex)? {
        let significant: Vec<f64> = stats
            .r
            .iter()
            .zip(&stats.significant)
            .map(|(&r, &s)| if s { r } else { f64::NAN })
            .collect();
        let maps = [
            VoxelMapSpec {
                name: format!("test r, {features_text} (q ≤ {FDR_ALPHA})"),
                values: &significant,
                kind: MapKind::Signed { threshold: None },
            },
            VoxelMapSpec {
                name: format!("test r, {features_text}"),
                values: &stats.r,
                kind: MapKind::Signed { threshold: None },
            },
        ];
        let label_spec = labels.as_ref().map(RoiLabels::spec);
        let figures =
            write_cortex_maps(&ctx.out.join("cortex"), &placed, &maps, label_spec.as_ref())?;
        summary["cortex"] = serde_json::json!({
            "cortex": placed.cortex.name,
            "how": figures.how,
            "viewer": "cortex/viewer.html",
        });
    }
    write_json_atomic(&ctx.out.join("summary.json"), &summary)?;
    Ok(EncodeReport {
        summary,
        rois,
        features: features_text,
        n_features: joint.n_features,
        roi: (ctx.data.roi.name.clone(), ctx.data.roi.n_voxels),
        rows: (ctx.data.train.rows, ctx.data.test.rows),
    })
}
