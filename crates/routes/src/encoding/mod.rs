//! Encoding models: per-image features → every voxel of an ROI, scored on the held-out test
//! images with a permutation null and Benjamini–Hochberg FDR (`brainrecon encode`), joint
//! models of several feature blocks with their unique variance, and per-layer sweeps of a
//! network's features (`brainrecon encode layers`).

pub mod chart;
pub mod design;
pub mod job;
pub mod layers;

use crate::decode::decoders::DecoderCv;
use crate::error::{Result, RouteError};
use brainrecon_datasets::prepared::{Betas, PreparedSubject, Roi, Split};
use brainrecon_formats::{nifti_io, npy};
use brainrecon_ridge::metrics::summarize;
use brainrecon_ridge::stats::{
    bh_fdr, pearson_columns, permutation_test, seeded_block_permutations, Standardized,
};
use brainrecon_ridge::{Cv, Device, RidgeCv};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

pub use design::{build_design, load_block, Design, DesignOptions, FeatureBlock, Reduction};

pub use crate::score::FDR_ALPHA;

/// One subject's ROI betas: single train trials and repeat-averaged test images.
pub struct EncodingData {
    /// The ROI: its voxels and their coordinates.
    pub roi: Roi,
    /// Single-trial train betas `[n_train_trials, n_voxels]`.
    pub train: Betas,
    /// Image id of each train row.
    pub train_ids: Vec<usize>,
    /// Repeat-averaged test betas `[n_test_images, n_voxels]`.
    pub test: Betas,
    /// Image id of each test row.
    pub test_ids: Vec<usize>,
}

impl EncodingData {
    /// The betas of `roi`; at least 3 test images (a correlation needs them).
    pub fn load(subject: &PreparedSubject, roi: &str) -> Result<Self> {
        let roi = subject.roi(roi)?;
        let test = subject.betas(&roi, Split::Test)?;
        if test.rows < 3 {
            return Err(RouteError::mismatch(
                &subject.path("test_stimulus_ids.npy"),
                "rows",
                "at least 3 test images for a correlation",
                test.rows,
            ));
        }
        Ok(EncodingData {
            train: subject.betas(&roi, Split::Train)?,
            train_ids: subject.row_ids(Split::Train)?,
            test_ids: subject.row_ids(Split::Test)?,
            test,
            roi,
        })
    }

    /// The distinct training images, ascending.
    pub fn train_images(&self) -> Vec<usize> {
        let mut ids = self.train_ids.clone();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// How a model is fit and tested.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// The ridge penalty grid; each voxel chooses its own alpha.
    pub alphas: Vec<f64>,
    /// How alphas are chosen (K folds group an image's repeats).
    pub cv: DecoderCv,
    /// Where the ridge fit runs.
    pub device: Device,
    /// Permutations of the test rows in the null.
    pub permutations: usize,
    /// Test rows permuted together (1 = plain rows).
    pub block_size: usize,
    /// Seed of the permutations.
    pub seed: u64,
}

/// Per-voxel results, all (n_voxels,) in the ROI's column order.
#[derive(Debug, Clone)]
pub struct VoxelStats {
    /// Test Pearson r of predicted and measured betas (NaN for a constant column).
    pub r: Vec<f64>,
    /// One-sided permutation p-value of r.
    pub p: Vec<f64>,
    /// Benjamini–Hochberg q-value.
    pub q: Vec<f64>,
    /// Whether BH rejects at [`FDR_ALPHA`].
    pub significant: Vec<bool>,
}

/// Ridge from `design` to every voxel on the train trials (one alpha per voxel; K folds group
/// the repeats of an image), then the predicted test images (n_test × voxels, row-major).
pub fn fit_predict(data: &EncodingData, design: &Design, fit: &FitOptions) -> Result<Vec<f32>> {
    let source = Path::new("the design");
    let x_train = design.gather(&data.train_ids, source)?;
    let x_test = design.gather(&data.test_ids, source)?;
    let cv = match fit.cv {
        DecoderCv::Loo => Cv::Loo,
        DecoderCv::Gcv => Cv::Gcv,
        // Repeats of one image stay in one fold, so validation never sees a trained image.
        DecoderCv::KFold(n_folds) => Cv::KFold {
            n_folds,
            groups: Some(data.train_ids.iter().map(|&id| id as i64).collect()),
        },
    };
    let estimator = RidgeCv {
        alphas: fit.alphas.clone(),
        cv,
        device: fit.device,
        ..RidgeCv::default()
    };
    let model = estimator.fit_row_major(
        &x_train,
        (data.train.rows, design.width),
        &data.train.values,
        (data.train.rows, data.train.voxels),
    )?;
    Ok(model.predict_row_major(&x_test, (data.test.rows, design.width))?)
}

/// Test r of every voxel, its permutation p-value and BH q-value.
///
/// The null never refits: the test rows of the predictions are permuted (blocks of
/// `block_size` rows) and correlated with the measured betas. p = (1 + #{null r ≥ r}) /
/// (1 + permutations); an undefined r (a constant column) gets p = 1. A voxel is significant
/// where BH (statsmodels `fdrcorrection(p, 0.05, "indep")`) rejects.
pub fn score(data: &EncodingData, predicted: &[f32], fit: &FitOptions) -> Result<VoxelStats> {
    let (n, t) = (data.test.rows, data.test.voxels);
    let pred_z = Standardized::from_row_major(predicted, n, t)?;
    let truth_z = Standardized::from_row_major(&data.test.values, n, t)?;
    let perms = seeded_block_permutations(n, fit.block_size, fit.permutations, fit.seed);
    let (r, p) = permutation_test(&pred_z, &truth_z, &perms)?;
    let (q, significant) = bh_fdr(&p, FDR_ALPHA)?;
    Ok(VoxelStats {
        r,
        p,
        q,
        significant,
    })
}

/// Test Pearson r of every voxel (no null).
pub fn test_r(data: &EncodingData, predicted: &[f32]) -> Result<Vec<f64>> {
    Ok(pearson_columns(
        predicted,
        &data.test.values,
        data.test.rows,
        data.test.voxels,
    )?)
}

/// Variance explained as the squared test correlation with r's sign (r·|r|); an undefined r
/// counts as 0.
pub fn signed_r2(r: &[f64]) -> Vec<f64> {
    r.iter()
        .map(|&r| if r.is_finite() { r * r.abs() } else { 0.0 })
        .collect()
}

/// Accuracy over one voxel set.
#[derive(Debug, Clone, Serialize)]
pub struct RoiSummary {
    /// The voxel set's name (an ROI or an atlas label).
    pub roi: String,
    /// Voxels in the set.
    pub n_voxels: usize,
    /// Mean test r over the voxels.
    pub mean_r: f64,
    /// Median test r over the voxels.
    pub median_r: f64,
    /// Voxels significant at q ≤ [`FDR_ALPHA`].
    pub n_significant: usize,
    /// Their share of the set.
    pub fraction_significant: f64,
}

/// The per-ROI table `encode` and `encode layers` print: a header, then a line per ROI.
pub fn roi_table(rois: &[RoiSummary]) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<32} {:>7} {:>8} {:>8} {:>20}",
        "roi", "voxels", "mean r", "median r", "significant (q≤0.05)"
    );
    for row in rois {
        let _ = writeln!(
            text,
            "{:<32} {:>7} {:>8.3} {:>8.3} {:>11} ({:>5.1}%)",
            row.roi,
            row.n_voxels,
            row.mean_r,
            row.median_r,
            row.n_significant,
            100.0 * row.fraction_significant
        );
    }
    text
}

/// A named subset of the ROI's voxels (indices into its columns).
#[derive(Debug, Clone)]
pub struct VoxelSet {
    /// The set's name (an ROI or one of its atlas labels).
    pub name: String,
    /// Indices into the ROI's columns.
    pub voxels: Vec<usize>,
}

impl VoxelSet {
    /// The set's mean and median r and its significant voxels.
    pub fn summarize(&self, stats: &VoxelStats) -> RoiSummary {
        let r: Vec<f64> = self.voxels.iter().map(|&v| stats.r[v]).collect();
        let summary = summarize(&r);
        let n_significant = self
            .voxels
            .iter()
            .filter(|&&v| stats.significant[v])
            .count();
        RoiSummary {
            roi: self.name.clone(),
            n_voxels: self.voxels.len(),
            mean_r: summary.mean,
            median_r: summary.median,
            n_significant,
            fraction_significant: n_significant as f64 / self.voxels.len().max(1) as f64,
        }
    }

    /// Mean of `values` (n_voxels,) over the set (finite values only).
    pub fn mean_of(&self, values: &[f64]) -> f64 {
        summarize(&self.voxels.iter().map(|&v| values[v]).collect::<Vec<_>>()).mean
    }
}

/// Voxel (x, y, z) of each ROI voxel, in the ROI's column order.
pub fn roi_coordinates(subject: &PreparedSubject, roi: &Roi) -> Result<Vec<[usize; 3]>> {
    let all = atlas_coordinates(subject, &roi.atlas)?;
    let coords: Vec<[usize; 3]> = match &roi.columns {
        None => all,
        Some(columns) => columns.iter().map(|&c| all[c]).collect(),
    };
    if coords.len() != roi.n_voxels {
        return Err(RouteError::mismatch(
            &subject.path(&format!("rois/{}.npy", roi.atlas)),
            "rows",
            format!("{} voxels of {}", roi.n_voxels, roi.name),
            coords.len(),
        ));
    }
    Ok(coords)
}

/// `rois/<atlas>.npy`: (n_voxels, 3) int voxel coordinates inside the volume.
fn atlas_coordinates(subject: &PreparedSubject, atlas: &str) -> Result<Vec<[usize; 3]>> {
    let path = subject.path(&format!("rois/{atlas}.npy"));
    let array = npy::read_i64(&path)?;
    let shape = subject.meta.volume_shape;
    if array.shape.len() != 2 || array.shape[1] != 3 {
        return Err(RouteError::mismatch(
            &path,
            "shape",
            "(n_voxels, 3)",
            format!("{:?}", array.shape),
        ));
    }
    array
        .data
        .chunks_exact(3)
        .enumerate()
        .map(|(row, xyz)| {
            let inside = xyz
                .iter()
                .zip(shape)
                .all(|(&v, s)| v >= 0 && (v as usize) < s);
            if !inside {
                return Err(RouteError::mismatch(
                    &path,
                    format!("row {row}"),
                    format!("a voxel inside the volume {shape:?}"),
                    format!("{xyz:?}"),
                ));
            }
            Ok([xyz[0] as usize, xyz[1] as usize, xyz[2] as usize])
        })
        .collect()
}

/// The ROI itself, then every label of the atlases `atlases` (all when `None`) that overlaps
/// it, matched by voxel coordinates (so `nsdgeneral` also reports streams/early, …). A label
/// covering the whole ROI would repeat its row and is left out.
pub fn voxel_sets(
    subject: &PreparedSubject,
    roi: &Roi,
    coords: &[[usize; 3]],
    atlases: Option<&[String]>,
) -> Result<Vec<VoxelSet>> {
    let mut sets = vec![VoxelSet {
        name: roi.name.clone(),
        voxels: (0..coords.len()).collect(),
    }];
    let position: HashMap<[usize; 3], usize> =
        coords.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    let wanted = |name: &str| atlases.is_none_or(|list| list.iter().any(|a| a == name));
    for atlas in subject.meta.atlases.iter().filter(|a| wanted(&a.name)) {
        let atlas_coords = atlas_coordinates(subject, &atlas.name)?;
        let labels_path = subject.path(&format!("rois/{}_labels.npy", atlas.name));
        let labels = npy::read_i64(&labels_path)?.data;
        if labels.len() != atlas_coords.len() {
            return Err(RouteError::mismatch(
                &labels_path,
                "length",
                format!(
                    "{} labels, one per row of rois/{}.npy",
                    atlas_coords.len(),
                    atlas.name
                ),
                labels.len(),
            ));
        }
        for label in &atlas.labels {
            let name = format!("{}/{}", atlas.name, label.name);
            let voxels: Vec<usize> = atlas_coords
                .iter()
                .zip(&labels)
                .filter(|(_, &value)| value == label.value as i64)
                .filter_map(|(c, _)| position.get(c).copied())
                .collect();
            if name != roi.name && !voxels.is_empty() && voxels.len() < coords.len() {
                sets.push(VoxelSet { name, voxels });
            }
        }
    }
    Ok(sets)
}

/// Writes `values` (n_voxels,) at `coords` of the subject's volume, 0 elsewhere and where a
/// value is not finite (viewers choke on NaN), as float32 NIfTI with the subject's affine.
pub fn write_map(
    path: &Path,
    subject: &PreparedSubject,
    coords: &[[usize; 3]],
    values: impl Iterator<Item = f32>,
) -> Result<()> {
    let shape = subject.meta.volume_shape;
    let mut volume = vec![0.0f32; shape.iter().product()];
    for ([x, y, z], v) in coords.iter().zip(values) {
        volume[x + shape[0] * (y + shape[1] * z)] = if v.is_finite() { v } else { 0.0 };
    }
    nifti_io::write_f32(path, shape, &subject.meta.affine, &volume)?;
    Ok(())
}

/// `NAME.npy` (float64, n_voxels) and `NAME.nii.gz` of per-voxel values.
pub fn write_values(
    out: &Path,
    name: &str,
    subject: &PreparedSubject,
    coords: &[[usize; 3]],
    values: &[f64],
) -> Result<()> {
    npy::write(&out.join(format!("{name}.npy")), &[values.len()], values)?;
    write_map(
        &out.join(format!("{name}.nii.gz")),
        subject,
        coords,
        values.iter().map(|&v| v as f32),
    )
}

/// The cortex `choice` names with the ROI's voxels placed on it (`None`: no cortex applies),
/// and the subject's `streams` atlas (NSD's, where it has one) over those voxels, for outlines.
pub fn cortex_for(
    subject: &PreparedSubject,
    coords: &[[usize; 3]],
    choice: &brainrecon_cortex::report::CortexChoice,
) -> Result<
    Option<(
        brainrecon_cortex::report::CortexPlacement,
        Option<RoiLabels>,
    )>,
> {
    let grid = brainrecon_cortex::place::VoxelGrid {
        shape: subject.meta.volume_shape,
        affine: &subject.meta.affine,
        voxels: coords,
    };
    let Some(placed) = brainrecon_cortex::report::resolve(choice, &grid, subject.meta.simulated)?
    else {
        return Ok(None);
    };
    let labels = match subject.meta.atlases.iter().find(|a| a.name == "streams") {
        Some(atlas) => {
            let atlas_coords = atlas_coordinates(subject, &atlas.name)?;
            let values = npy::read_i64(&subject.path("rois/streams_labels.npy"))?.data;
            let by_voxel: HashMap<[usize; 3], i64> =
                atlas_coords.iter().copied().zip(values).collect();
            Some(RoiLabels {
                name: "streams".into(),
                values: coords
                    .iter()
                    .map(|c| by_voxel.get(c).map_or(0, |&v| v as i32))
                    .collect(),
                names: atlas
                    .labels
                    .iter()
                    .map(|l| (l.value, l.name.clone()))
                    .collect(),
            })
        }
        None => None,
    };
    Ok(Some((placed, labels)))
}

/// An atlas's label of each ROI voxel (0: none), for outlines on the cortex.
pub struct RoiLabels {
    /// The atlas.
    pub name: String,
    /// Label value of each ROI voxel, in the ROI's column order (0: none).
    pub values: Vec<i32>,
    /// (value, name) of each label.
    pub names: Vec<(i32, String)>,
}

impl RoiLabels {
    /// The labels as the cortex report draws their outlines.
    pub fn spec(&self) -> brainrecon_cortex::report::VoxelLabelsSpec<'_> {
        brainrecon_cortex::report::VoxelLabelsSpec {
            name: self.name.clone(),
            values: &self.values,
            names: self.names.clone(),
        }
    }
}

/// r.npy, p.npy, q.npy and the maps r.nii.gz, neglog10p.nii.gz, significant.nii.gz.
pub fn write_stats(
    out: &Path,
    subject: &PreparedSubject,
    coords: &[[usize; 3]],
    stats: &VoxelStats,
) -> Result<()> {
    write_values(out, "r", subject, coords, &stats.r)?;
    npy::write(&out.join("p.npy"), &[stats.p.len()], &stats.p)?;
    npy::write(&out.join("q.npy"), &[stats.q.len()], &stats.q)?;
    let neglog10p = stats.p.iter().map(|&p| -(p.log10()) as f32);
    write_map(&out.join("neglog10p.nii.gz"), subject, coords, neglog10p)?;
    let significant = stats.significant.iter().map(|&s| f32::from(u8::from(s)));
    write_map(
        &out.join("significant.nii.gz"),
        subject,
        coords,
        significant,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn uniform(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
    }

    /// 40 images of 300 features; 30 train images seen twice each, 10 test images; 6 voxels
    /// that read a few features plus noise.
    fn wide_problem() -> (EncodingData, FeatureBlock) {
        let (n_images, width, voxels) = (40, 300, 6);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let features = uniform(n_images * width, &mut rng);
        let response = |id: usize, v: usize, noise: f32| {
            features[id * width + v] * 2.0 - features[id * width + 50 + v] + noise
        };
        let train_ids: Vec<usize> = (0..60).map(|i| i % 30).collect();
        let test_ids: Vec<usize> = (30..40).collect();
        let betas = |ids: &[usize], rng: &mut ChaCha8Rng| Betas {
            rows: ids.len(),
            voxels,
            values: ids
                .iter()
                .flat_map(|&id| (0..voxels).map(move |v| (id, v)))
                .map(|(id, v)| response(id, v, rng.gen_range(-0.5f32..0.5)))
                .collect(),
        };
        let data = EncodingData {
            roi: Roi {
                name: "test".into(),
                atlas: "test".into(),
                columns: None,
                n_voxels: voxels,
            },
            train: betas(&train_ids, &mut rng),
            test: betas(&test_ids, &mut rng),
            train_ids,
            test_ids,
        };
        let block = FeatureBlock {
            name: "wide".into(),
            targets: crate::decode::decoders::ImageTargets {
                ids: (0..n_images).collect(),
                shape: vec![width],
                values: features.into(),
                source: "wide.npy".into(),
                model: None,
                model_fingerprint: None,
            },
        };
        (data, block)
    }

    /// The standardised design of `blocks` without any reduction.
    fn unreduced(blocks: &[&FeatureBlock], data: &EncodingData) -> Design {
        let values = design::standardized_for_tests(blocks, &data.train_images());
        let width = blocks.iter().map(|b| b.width()).sum();
        Design {
            ids: blocks[0].targets.ids.clone(),
            width,
            values,
            n_features: width,
            reduction: None,
        }
    }

    fn assert_close(a: &[f32], b: &[f32]) {
        let scale = b.iter().map(|v| v.abs()).fold(0f32, f32::max);
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-4 * scale, "{x} vs {y}");
        }
    }

    /// The columns `range` of a block.
    fn columns(block: &FeatureBlock, range: std::ops::Range<usize>) -> FeatureBlock {
        let w = block.width();
        let values: Vec<f32> = block
            .targets
            .values
            .chunks_exact(w)
            .flat_map(|row| row[range.clone()].to_vec())
            .collect();
        FeatureBlock {
            name: format!("{range:?}"),
            targets: crate::decode::decoders::ImageTargets {
                ids: block.targets.ids.clone(),
                shape: vec![range.len()],
                values: values.into(),
                source: block.targets.source.clone(),
                model: None,
                model_fingerprint: None,
            },
        }
    }

    #[test]
    fn reduced_wide_features_predict_what_the_full_features_predict() {
        let (data, block) = wide_problem();
        let fit = FitOptions {
            alphas: vec![0.1, 1.0, 10.0, 100.0],
            cv: DecoderCv::KFold(3),
            device: Device::Cpu,
            permutations: 10,
            block_size: 1,
            seed: 0,
        };
        let options = DesignOptions {
            standardize: true,
            pca: None,
        };
        let reduced = build_design(&[&block], &data.train_images(), options).unwrap();
        let reduction = reduced
            .reduction
            .clone()
            .expect("300 columns > 30 train images");
        assert!(
            reduction.lossless && reduction.components <= 29,
            "{reduction:?}"
        );
        // A --pca above the number of components keeps them all.
        let all = build_design(
            &[&block],
            &data.train_images(),
            DesignOptions {
                standardize: true,
                pca: Some(10_000),
            },
        );
        assert_eq!(all.unwrap().values, reduced.values);
        // The same standardised design without the reduction.
        let a = fit_predict(&data, &reduced, &fit).unwrap();
        assert_close(
            &a,
            &fit_predict(&data, &unreduced(&[&block], &data), &fit).unwrap(),
        );
        // And the model works: every voxel is predicted above chance.
        let r = test_r(&data, &a).unwrap();
        assert!(r.iter().all(|&r| r > 0.2), "{r:?}");

        // Two blocks side by side, each standardised: the same holds for the joint design.
        let (left, right) = (columns(&block, 0..200), columns(&block, 200..300));
        let joint = build_design(&[&left, &right], &data.train_images(), options).unwrap();
        assert!(joint.reduction.is_some());
        assert_close(
            &fit_predict(&data, &joint, &fit).unwrap(),
            &fit_predict(&data, &unreduced(&[&left, &right], &data), &fit).unwrap(),
        );
    }

    #[test]
    fn signed_r2_keeps_the_sign_and_zeroes_undefined_r() {
        assert_eq!(signed_r2(&[0.5, -0.5, f64::NAN]), vec![0.25, -0.25, 0.0]);
    }
}
