use super::usage;
use brainrecon_data::prepared::{PreparedSubject, Split};
use brainrecon_data::{npy, DataError};
use brainrecon_ridge::{Cv, RidgeCv};
use std::path::{Path, PathBuf};

/// Fit a ridge decoder from an ROI's betas to per-image features of a prepared subject.
///
/// The target is `pixels:SIZE` (the stimulus images, resized to SIZE×SIZE×3 in [0, 1]) or a
/// float `.npy` of shape (n_images, d) whose rows follow the subject's `stimuli/ids.npy`.
/// One alpha per target is chosen from the grid by cross-validation; K-fold folds are grouped
/// by stimulus, so repeats of an image never straddle training and validation.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon fit --subject prepared/subj01 --roi nsdgeneral --target pixels:32 --out models/pixels"
)]
pub struct Args {
    /// A prepared subject directory
    #[arg(long)]
    subject: PathBuf,
    /// ROI: an atlas (nsdgeneral), atlas/label (streams/early) or a unique label (V1v)
    #[arg(long, default_value = "nsdgeneral")]
    roi: String,
    /// `pixels:SIZE`, or FEATURES.npy with one row per subject image
    #[arg(long)]
    target: String,
    /// Model directory to write (weights.safetensors + model.json)
    #[arg(long)]
    out: PathBuf,
    /// Alpha grid, comma-separated (default: 10 values log-spaced over 1 … 1e6)
    #[arg(long, value_delimiter = ',')]
    alphas: Option<Vec<f64>>,
    /// `loo` (efficient leave-one-out) or the number of folds grouped by stimulus
    #[arg(long, default_value = "5")]
    cv: String,
    /// Train on betas averaged over repeats (needs `nsd prepare --average-train`)
    #[arg(long)]
    average_train: bool,
    /// Scale each voxel to unit variance inside the model
    #[arg(long)]
    standardize: bool,
    /// Print the fit summary as JSON
    #[arg(long)]
    json: bool,
}

/// What a model predicts, recorded in its metadata so `decode` can render it.
pub enum Target {
    Pixels(usize),
    Features(PathBuf),
}

impl Target {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        if let Some(size) = text.strip_prefix("pixels:") {
            let size: usize = size
                .parse()
                .map_err(|_| usage(format!("--target: expected pixels:SIZE, found '{text}'")))?;
            if !(4..=512).contains(&size) {
                return Err(usage(format!(
                    "--target: pixel size must be 4 to 512, found {size}"
                )));
            }
            return Ok(Target::Pixels(size));
        }
        if text.ends_with(".npy") {
            return Ok(Target::Features(PathBuf::from(text)));
        }
        Err(usage(format!(
            "--target: expected pixels:SIZE or a FEATURES.npy path, found '{text}'"
        )))
    }
}

/// Features of every subject image, (n_images, d), rows following `stimuli/ids.npy`.
pub fn image_features(
    subject: &PreparedSubject,
    target: &Target,
) -> anyhow::Result<(Vec<usize>, usize, Vec<f32>)> {
    let stimuli = subject.images()?;
    match target {
        Target::Pixels(size) => {
            let mut values = Vec::with_capacity(stimuli.ids.len() * size * size * 3);
            for &id in &stimuli.ids {
                let image = stimuli.get(id).expect("id listed in the store");
                values.extend(image.resize(*size, *size).to_unit_f32());
            }
            Ok((stimuli.ids.clone(), size * size * 3, values))
        }
        Target::Features(path) => {
            let array = npy::read_f32(path)?;
            let (rows, cols) = array.as_matrix(path)?;
            if rows != stimuli.ids.len() {
                return Err(DataError::invalid(
                    path,
                    "rows",
                    format!(
                        "{} rows, one per image in {}",
                        stimuli.ids.len(),
                        subject.path("stimuli/ids.npy").display()
                    ),
                    rows.to_string(),
                )
                .into());
            }
            Ok((stimuli.ids.clone(), cols, array.data))
        }
    }
}

/// Rows of `features` for each id in `row_ids`.
pub fn gather_rows(
    ids: &[usize],
    width: usize,
    features: &[f32],
    row_ids: &[usize],
    source: &Path,
) -> anyhow::Result<Vec<f32>> {
    let mut out = Vec::with_capacity(row_ids.len() * width);
    for &id in row_ids {
        let row = ids.binary_search(&id).map_err(|_| {
            DataError::invalid(source, "stimuli/ids.npy", format!("image {id}"), "missing")
        })?;
        out.extend_from_slice(&features[row * width..(row + 1) * width]);
    }
    Ok(out)
}

pub fn default_alphas() -> Vec<f64> {
    (0..10).map(|i| 10f64.powf(6.0 * i as f64 / 9.0)).collect()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let subject = PreparedSubject::open(&args.subject)?;
    let roi = subject.roi(&args.roi)?;
    let target = Target::parse(&args.target)?;
    let split = if args.average_train {
        Split::TrainAveraged
    } else {
        Split::Train
    };
    let betas = subject.betas(&roi, split)?;
    let row_ids = subject.row_ids(split)?;
    let (ids, width, features) = image_features(&subject, &target)?;
    let y = gather_rows(&ids, width, &features, &row_ids, &subject.root)?;
    let cv = match args.cv.as_str() {
        "loo" => Cv::Loo,
        k => {
            let n_folds: usize = k.parse().map_err(|_| {
                usage(format!(
                    "--cv: expected loo or a number of folds, found '{k}'"
                ))
            })?;
            Cv::KFold {
                n_folds,
                groups: Some(row_ids.iter().map(|&id| id as i64).collect()),
            }
        }
    };
    let estimator = RidgeCv {
        alphas: args.alphas.unwrap_or_else(default_alphas),
        cv,
        standardize: args.standardize,
        ..RidgeCv::default()
    };
    let started = std::time::Instant::now();
    let mut model = estimator.fit_row_major(
        &betas.values,
        (betas.rows, betas.voxels),
        &y,
        (betas.rows, width),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let target_text = match &target {
        Target::Pixels(size) => format!("pixels:{size}"),
        Target::Features(path) => path.display().to_string(),
    };
    for (key, value) in [
        ("subject", serde_json::json!(subject.meta.subject)),
        ("subject_dir", serde_json::json!(args.subject)),
        ("roi", serde_json::json!(roi.name)),
        ("target", serde_json::json!(target_text)),
        (
            "train_split",
            serde_json::json!(if args.average_train {
                "train_averaged"
            } else {
                "train"
            }),
        ),
    ] {
        model.metadata.insert(key.into(), value);
    }
    model.save(&args.out)?;
    let mut chosen = model.alphas.clone();
    chosen.sort_by(f64::total_cmp);
    let summary = serde_json::json!({
        "model": args.out,
        "roi": roi.name,
        "n_voxels": betas.voxels,
        "n_train_rows": betas.rows,
        "n_targets": width,
        "median_alpha": chosen[chosen.len() / 2],
        "seconds": seconds,
    });
    if args.json {
        return super::print_json(&summary);
    }
    println!(
        "fitted {} voxels of {} → {} targets on {} rows in {:.1} s (median alpha {:.3e}); saved {}",
        betas.voxels,
        roi.name,
        width,
        betas.rows,
        seconds,
        chosen[chosen.len() / 2],
        args.out.display()
    );
    Ok(())
}
