//! `brainrecon encode`: an encoding model (features → voxels) with a permutation test and FDR.

use super::usage;
use brainrecon_data::prepared::{PreparedSubject, Roi, Split};
use brainrecon_data::{nifti_io, npy, DataError};
use brainrecon_ridge::metrics::summarize;
use brainrecon_ridge::stats::{bh_fdr, permutation_test, seeded_block_permutations, Standardized};
use brainrecon_ridge::{Cv, RidgeCv};
use brainrecon_routes::decoders::{default_features_dir, image_targets, standard_alphas, Target};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// FDR level of the significance maps and counts.
const FDR_ALPHA: f64 = 0.05;

/// Fit an encoding model from per-image features to an ROI's voxels and test it.
///
/// Ridge maps the features to every voxel on the train split (one alpha per voxel, K-fold
/// folds grouped by stimulus), predicts the test split (betas averaged over repeats) and
/// scores each voxel by the Pearson r between prediction and measurement.
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
/// and affine; 0 outside the ROI and where r is undefined); summary.json (the ROI and every
/// atlas label that overlaps it: voxels, mean and median r, number and fraction
/// significant).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon encode --subject prepared/subj01 --features pixels:8 --roi nsdgeneral --out encoding/pixels\n  brainrecon encode --subject prepared/subj01 --features clip.npy --permutations 5000 --out encoding/clip"
)]
pub struct Args {
    /// A prepared subject directory
    #[arg(long)]
    subject: PathBuf,
    /// FEATURES.npy (float, (n_images, d), rows following stimuli/ids.npy) or `pixels:SIZE`
    #[arg(long)]
    features: String,
    /// ROI: an atlas (nsdgeneral), atlas/label (streams/early) or a unique label (V1v)
    #[arg(long, default_value = "nsdgeneral")]
    roi: String,
    /// Output directory
    #[arg(long)]
    out: PathBuf,
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
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

/// Accuracy of one voxel set.
#[derive(Debug, Serialize)]
struct RoiSummary {
    roi: String,
    n_voxels: usize,
    mean_r: f64,
    median_r: f64,
    n_significant: usize,
    fraction_significant: f64,
}

/// Per-voxel results of the ROI, all (n_voxels,).
struct VoxelStats {
    r: Vec<f64>,
    p: Vec<f64>,
    q: Vec<f64>,
    significant: Vec<bool>,
}

/// `pixels:SIZE`, a FEATURES.npy, or features of `brainrecon features` (z, c, clip-image).
fn parse_features(text: &str) -> anyhow::Result<Target> {
    Target::parse(text).map_err(|_| {
        usage(format!(
            "--features: expected FEATURES.npy, pixels:SIZE, z, c or clip-image, found '{text}'"
        ))
    })
}

fn parse_cv(text: &str, groups: &[usize]) -> anyhow::Result<Cv> {
    if text == "loo" {
        return Ok(Cv::Loo);
    }
    if text == "gcv" {
        return Ok(Cv::Gcv);
    }
    let n_folds: usize = text.parse().map_err(|_| {
        usage(format!(
            "--cv: expected loo, gcv or a number of folds, found '{text}'"
        ))
    })?;
    // Repeats of one image stay in one fold, so validation never sees a trained image.
    Ok(Cv::KFold {
        n_folds,
        groups: Some(groups.iter().map(|&id| id as i64).collect()),
    })
}

/// Fails naming the file, row (image id) and column of the first non-finite feature.
fn check_finite(values: &[f32], width: usize, ids: &[usize], source: &str) -> anyhow::Result<()> {
    if let Some(at) = values.iter().position(|v| !v.is_finite()) {
        return Err(DataError::invalid(
            source,
            "values",
            "finite numbers",
            format!(
                "{} at row {} (image {}), column {}",
                values[at],
                at / width,
                ids[at / width],
                at % width
            ),
        )
        .into());
    }
    Ok(())
}

fn check_options(args: &Args) -> anyhow::Result<()> {
    if args.permutations == 0 {
        return Err(usage(
            "--permutations: expected at least 1 (1000 or more for p-values near 0.001), found 0",
        ));
    }
    if args.block_size == 0 {
        return Err(usage("--block-size: expected at least 1, found 0"));
    }
    Ok(())
}

/// Voxel (x, y, z) of each ROI voxel, in the ROI's column order; (n_voxels,) triples.
fn roi_coordinates(subject: &PreparedSubject, roi: &Roi) -> anyhow::Result<Vec<[usize; 3]>> {
    let all = atlas_coordinates(subject, &roi.atlas)?;
    Ok(match &roi.columns {
        None => all,
        Some(columns) => columns.iter().map(|&c| all[c]).collect(),
    })
}

/// `rois/<atlas>.npy`: (n_voxels, 3) int voxel coordinates inside the volume.
fn atlas_coordinates(subject: &PreparedSubject, atlas: &str) -> anyhow::Result<Vec<[usize; 3]>> {
    let path = subject.path(&format!("rois/{atlas}.npy"));
    let array = npy::read_i64(&path)?;
    let shape = subject.meta.volume_shape;
    if array.shape.len() != 2 || array.shape[1] != 3 {
        return Err(DataError::invalid(
            &path,
            "shape",
            "(n_voxels, 3)",
            format!("{:?}", array.shape),
        )
        .into());
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
                return Err(DataError::invalid(
                    &path,
                    format!("row {row}"),
                    format!("a voxel inside the volume {shape:?}"),
                    format!("{xyz:?}"),
                )
                .into());
            }
            Ok([xyz[0] as usize, xyz[1] as usize, xyz[2] as usize])
        })
        .collect()
}

fn summarize_voxels(name: String, voxels: &[usize], stats: &VoxelStats) -> RoiSummary {
    let r: Vec<f64> = voxels.iter().map(|&v| stats.r[v]).collect();
    let summary = summarize(&r);
    let n_significant = voxels.iter().filter(|&&v| stats.significant[v]).count();
    RoiSummary {
        roi: name,
        n_voxels: voxels.len(),
        mean_r: summary.mean,
        median_r: summary.median,
        n_significant,
        fraction_significant: n_significant as f64 / voxels.len().max(1) as f64,
    }
}

/// The ROI itself, then every label of every atlas that overlaps it (matched by voxel
/// coordinates, so `--roi nsdgeneral` also reports streams/early, prf-visualrois/V1v, …).
fn roi_summaries(
    subject: &PreparedSubject,
    roi: &Roi,
    coords: &[[usize; 3]],
    stats: &VoxelStats,
) -> anyhow::Result<Vec<RoiSummary>> {
    let all: Vec<usize> = (0..coords.len()).collect();
    let mut rows = vec![summarize_voxels(roi.name.clone(), &all, stats)];
    let position: HashMap<[usize; 3], usize> =
        coords.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    for atlas in &subject.meta.atlases {
        let atlas_coords = atlas_coordinates(subject, &atlas.name)?;
        let labels_path = subject.path(&format!("rois/{}_labels.npy", atlas.name));
        let labels = npy::read_i64(&labels_path)?.data;
        if labels.len() != atlas_coords.len() {
            return Err(DataError::invalid(
                &labels_path,
                "length",
                format!(
                    "{} labels, one per row of rois/{}.npy",
                    atlas_coords.len(),
                    atlas.name
                ),
                labels.len().to_string(),
            )
            .into());
        }
        for label in &atlas.labels {
            let name = format!("{}/{}", atlas.name, label.name);
            if name == roi.name {
                continue;
            }
            let voxels: Vec<usize> = atlas_coords
                .iter()
                .zip(&labels)
                .filter(|(_, &value)| value == label.value as i64)
                .filter_map(|(c, _)| position.get(c).copied())
                .collect();
            // A label covering the whole ROI would repeat its row.
            if !voxels.is_empty() && voxels.len() < coords.len() {
                rows.push(summarize_voxels(name, &voxels, stats));
            }
        }
    }
    Ok(rows)
}

/// A volume with `values` (n_voxels,) at `coords` and 0 elsewhere, x fastest.
fn scatter(
    shape: [usize; 3],
    coords: &[[usize; 3]],
    values: impl Iterator<Item = f32>,
) -> Vec<f32> {
    let mut volume = vec![0.0f32; shape.iter().product()];
    for ([x, y, z], v) in coords.iter().zip(values) {
        // Viewers choke on NaN; undefined r is written as 0, like outside the ROI.
        volume[x + shape[0] * (y + shape[1] * z)] = if v.is_finite() { v } else { 0.0 };
    }
    volume
}

fn write_outputs(
    out: &Path,
    subject: &PreparedSubject,
    coords: &[[usize; 3]],
    stats: &VoxelStats,
    summary: &serde_json::Value,
) -> anyhow::Result<()> {
    let n = coords.len();
    for (name, values) in [
        ("r.npy", &stats.r),
        ("p.npy", &stats.p),
        ("q.npy", &stats.q),
    ] {
        npy::write(&out.join(name), &[n], values)?;
    }
    let (shape, affine) = (subject.meta.volume_shape, &subject.meta.affine);
    let maps: [(&str, Vec<f32>); 3] = [
        ("r.nii.gz", stats.r.iter().map(|&r| r as f32).collect()),
        (
            "neglog10p.nii.gz",
            stats.p.iter().map(|&p| -(p.log10()) as f32).collect(),
        ),
        (
            "significant.nii.gz",
            stats
                .significant
                .iter()
                .map(|&s| f32::from(u8::from(s)))
                .collect(),
        ),
    ];
    for (name, values) in maps {
        let volume = scatter(shape, coords, values.into_iter());
        nifti_io::write_f32(&out.join(name), shape, affine, &volume)?;
    }
    // Last: a complete summary.json marks a complete output directory.
    brainrecon_data::atomic::write_json_atomic(&out.join("summary.json"), summary)?;
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_options(&args)?;
    let started = Instant::now();
    let subject = PreparedSubject::open(&args.subject)?;
    let roi = subject.roi(&args.roi)?;
    let target = parse_features(&args.features)?;
    let targets = image_targets(&subject, &target, &default_features_dir(&subject))?;
    let (ids, width, features) = (&targets.ids, targets.width(), &targets.values);
    check_finite(features, width, ids, &args.features)?;
    let coords = roi_coordinates(&subject, &roi)?;
    if coords.len() != roi.n_voxels {
        return Err(DataError::invalid(
            subject.path(&format!("rois/{}.npy", roi.atlas)),
            "rows",
            format!("{} voxels of {}", roi.n_voxels, roi.name),
            coords.len().to_string(),
        )
        .into());
    }

    // Train: single trials (rows follow train_stimulus_ids); test: averaged images.
    let train = subject.betas(&roi, Split::Train)?;
    let train_ids = subject.row_ids(Split::Train)?;
    let test = subject.betas(&roi, Split::Test)?;
    let test_ids = subject.row_ids(Split::Test)?;
    let n_test = test.rows;
    if n_test < 3 {
        return Err(DataError::invalid(
            subject.path("test_stimulus_ids.npy"),
            "rows",
            "at least 3 test images for a correlation",
            n_test.to_string(),
        )
        .into());
    }
    let n_blocks = n_test.div_ceil(args.block_size);
    if n_blocks < 2 {
        return Err(usage(format!(
            "--block-size: {} test images make {n_blocks} block of {}; expected at most {}",
            n_test,
            args.block_size,
            n_test / 2
        )));
    }
    let x_train = targets.gather(&train_ids)?;
    let x_test = targets.gather(&test_ids)?;

    let device = super::ridge::ridge_device(&args.device)?;
    let cv = parse_cv(&args.cv, &train_ids)?;
    if device != brainrecon_ridge::Device::Cpu && matches!(cv, brainrecon_ridge::Cv::KFold { .. }) {
        return Err(usage(format!(
            "--device {}: K-fold cross-validation runs on the CPU only; use --cv gcv or --cv loo on a GPU",
            args.device
        )));
    }
    let estimator = RidgeCv {
        alphas: args.alphas.clone().unwrap_or_else(standard_alphas),
        cv,
        device,
        ..RidgeCv::default()
    };
    let fit_started = Instant::now();
    let model = estimator.fit_row_major(
        &x_train,
        (train.rows, width),
        &train.values,
        (train.rows, train.voxels),
    )?;
    let predicted = model.predict_row_major(&x_test, (n_test, width))?;
    let fit_seconds = fit_started.elapsed().as_secs_f64();

    // The null never refits: standardise once, then each permutation is a gather + dots.
    let null_started = Instant::now();
    let pred_z = Standardized::from_row_major(&predicted, n_test, test.voxels)?;
    let truth_z = Standardized::from_row_major(&test.values, n_test, test.voxels)?;
    let perms = seeded_block_permutations(n_test, args.block_size, args.permutations, args.seed);
    let (r, p) = permutation_test(&pred_z, &truth_z, &perms)?;
    let (q, significant) = bh_fdr(&p, FDR_ALPHA)?;
    let null_seconds = null_started.elapsed().as_secs_f64();
    let stats = VoxelStats {
        r,
        p,
        q,
        significant,
    };

    let rois = roi_summaries(&subject, &roi, &coords, &stats)?;
    let features_text = target.name();
    let summary = serde_json::json!({
        "subject": subject.meta.subject,
        "subject_dir": args.subject,
        "roi": roi.name,
        "features": features_text,
        "n_features": width,
        "n_train_rows": train.rows,
        "n_test_images": n_test,
        "cv": args.cv,
        "permutations": args.permutations,
        "block_size": args.block_size,
        "seed": args.seed,
        "p_value": "one-sided: (1 + #{null r >= r}) / (1 + permutations), null = test rows of the predictions permuted",
        "fdr": {"method": "Benjamini-Hochberg (statsmodels fdrcorrection, indep)", "alpha": FDR_ALPHA},
        "rois": rois,
        "seconds": {"fit": fit_seconds, "permutations": null_seconds},
    });
    write_outputs(&args.out, &subject, &coords, &stats, &summary)?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let mut printed = summary;
        printed["out"] = serde_json::json!(args.out);
        printed["seconds"]["total"] = serde_json::json!(seconds);
        return super::print_json(&printed);
    }
    println!(
        "encoded {} voxels of {} from {} ({} features) on {} train rows; {} test images, {} permutations (blocks of {}) in {:.1} s; wrote {}",
        roi.n_voxels,
        roi.name,
        features_text,
        width,
        train.rows,
        n_test,
        args.permutations,
        args.block_size,
        seconds,
        args.out.display()
    );
    println!(
        "{:<32} {:>7} {:>8} {:>8} {:>20}",
        "roi", "voxels", "mean r", "median r", "significant (q≤0.05)"
    );
    for row in &rois {
        println!(
            "{:<32} {:>7} {:>8.3} {:>8.3} {:>11} ({:>5.1}%)",
            row.roi,
            row.n_voxels,
            row.mean_r,
            row.median_r,
            row.n_significant,
            100.0 * row.fraction_significant
        );
    }
    Ok(())
}
