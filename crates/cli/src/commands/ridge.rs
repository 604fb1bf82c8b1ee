//! `brainrecon ridge …`: ridge regression on plain .npy arrays, usable without a prepared subject.

use super::usage;
use brainrecon_data::{npy, DataError};
use brainrecon_ridge::metrics::{pearson_per_target, r2_per_target, summarize};
use brainrecon_ridge::{row_major_view, Cv, Precision, RidgeCv, RidgeModel, Shard};
use std::path::{Path, PathBuf};

/// Ridge regression on plain arrays (.npy): fit with cross-validated alphas, predict, score, merge
#[derive(clap::Subcommand)]
pub enum RidgeCommand {
    Fit(FitArgs),
    Merge(MergeArgs),
    Predict(PredictArgs),
    Score(ScoreArgs),
}

pub fn run(command: RidgeCommand) -> anyhow::Result<()> {
    match command {
        RidgeCommand::Fit(args) => fit(args),
        RidgeCommand::Merge(args) => merge(args),
        RidgeCommand::Predict(args) => predict(args),
        RidgeCommand::Score(args) => score(args),
    }
}

/// Fit multi-target ridge regression X → Y from two .npy files, one alpha per target.
///
/// X is (n, p) and Y is (n, t) (a 1-D Y is one target), float32 or float64, C order. Alphas
/// are chosen per target by efficient leave-one-out (`--cv loo`, as scikit-learn
/// `RidgeCV(alpha_per_target=True)`) or K-fold (`--cv 5`, as himalaya `RidgeCV`; with
/// `--groups` all rows of a group stay in one fold). The solver (primal p×p or kernel n×n) is
/// chosen by shape. `--shard k/N` fits only the k-th of N equal target ranges, k = 0 … N-1
/// (0-based, like `SLURM_ARRAY_TASK_ID` with `#SBATCH --array=0-(N-1)`); join the shards
/// with `brainrecon ridge merge`. With more columns than rows, `--dual` keeps the model as dual
/// coefficients and the training X (as himalaya's KernelRidge) and skips the refit of the
/// weights; `ridge predict` reads either form.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon ridge fit --x X.npy --y Y.npy --alphas 1e1,1e2,1e3,1e4 --cv loo --out model\n  \
    brainrecon ridge fit --x X.npy --y Y.npy --cv 5 --groups stimulus.npy --shard $SLURM_ARRAY_TASK_ID/8 --out shards/$SLURM_ARRAY_TASK_ID\n  \
    brainrecon ridge fit --x betas.npy --y latents.npy --cv gcv --precision f32 --dual --out model"
)]
pub struct FitArgs {
    /// Predictors, (n, p) .npy
    #[arg(long)]
    x: PathBuf,
    /// Targets, (n, t) or (n,) .npy
    #[arg(long)]
    y: PathBuf,
    /// Alpha grid, comma-separated, all > 0 (default: 10 values log-spaced over 1 … 1e6)
    #[arg(long)]
    alphas: Option<String>,
    /// `loo` (efficient leave-one-out), `gcv` (generalized cross-validation: the mean leverage
    /// instead of each one; up to 3× faster when X has more columns than rows) or a number
    /// of folds (K-fold, contiguous, no shuffle)
    #[arg(long, default_value = "loo")]
    cv: String,
    /// Integer .npy with one group label per row of X (K-fold only): a group never straddles folds
    #[arg(long)]
    groups: Option<PathBuf>,
    /// Scale each column of X to unit variance inside the model
    #[arg(long)]
    standardize: bool,
    /// Fit an unpenalized intercept (center X and Y)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    intercept: bool,
    /// Fit only target shard k of N, written `k/N` with k = 0 … N-1
    #[arg(long)]
    shard: Option<String>,
    /// Targets processed together (bounds memory: about 3 × n × chunk × 4 bytes per chunk)
    #[arg(long, default_value_t = 2048)]
    target_chunk: usize,
    /// Precision of the Gram matrix and its eigendecomposition: f64, or f32 (about 2× faster)
    #[arg(long, default_value = "f64")]
    precision: PrecisionArg,
    /// Threads (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
    /// cpu, cuda or cuda:N: where the fit runs (GPU: --cv gcv or loo, in --precision; a build
    /// with `--features cuda`)
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Keep dual coefficients (n × t) and the training X instead of weights (p × t): for more
    /// columns than rows, on the CPU; saves the refit (2·p·n·t operations) and, for many
    /// targets, space
    #[arg(long)]
    dual: bool,
    /// Model directory to write (weights.safetensors + model.json)
    #[arg(long)]
    out: PathBuf,
    /// Print the fit summary as JSON
    #[arg(long)]
    json: bool,
}

/// `--device` for ridge: cpu, cuda or cuda:N; a GPU in a build without CUDA is a usage error.
pub fn ridge_device(text: &str) -> anyhow::Result<brainrecon_ridge::Device> {
    let device: brainrecon_ridge::Device = text.parse().map_err(|_| {
        usage(format!(
            "--device: expected cpu, cuda or cuda:N, found '{text}'"
        ))
    })?;
    if device != brainrecon_ridge::Device::Cpu && !brainrecon_ridge::Device::cuda_compiled() {
        return Err(usage(format!(
            "--device {text}: this brainrecon was built without CUDA (build with --features cuda, \
             see the README's GPU section)"
        )));
    }
    Ok(device)
}

/// `--precision` values.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PrecisionArg {
    F64,
    F32,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F64 => Precision::F64,
            PrecisionArg::F32 => Precision::F32,
        }
    }
}

/// A float .npy read as an (n, m) row-major matrix, checked finite.
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

/// Reads `path` as a 1-D or 2-D float array; `what` names its role in messages.
pub fn read_matrix(path: &Path, what: &str) -> anyhow::Result<Matrix> {
    brainrecon_data::error::require_file(path, &format!("{what} as a .npy file"))?;
    let array = npy::read_f32(path)?;
    let (rows, cols) = array.as_matrix(path)?;
    if rows == 0 || cols == 0 {
        return Err(DataError::invalid(
            path,
            "shape",
            format!("a non-empty {what}"),
            format!("{:?}", array.shape),
        )
        .into());
    }
    if let Some(at) = array.data.iter().position(|v| !v.is_finite()) {
        return Err(DataError::invalid(
            path,
            format!("row {}, column {}", at / cols, at % cols),
            "finite values (no NaN or infinity)",
            array.data[at].to_string(),
        )
        .into());
    }
    Ok(Matrix {
        rows,
        cols,
        data: array.data,
    })
}

/// `--alphas` text → grid; every value finite and > 0.
pub(crate) fn parse_alphas(text: &str) -> anyhow::Result<Vec<f64>> {
    let parts: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(usage(
            "--alphas: the alpha grid is empty; give comma-separated values > 0, e.g. 1e1,1e2,1e3",
        ));
    }
    parts
        .iter()
        .map(|p| match p.parse::<f64>() {
            Ok(a) if a.is_finite() && a > 0.0 => Ok(a),
            _ => Err(usage(format!(
                "--alphas: expected finite values > 0, found '{p}'"
            ))),
        })
        .collect()
}

/// `--dual` needs more columns than rows, the CPU and no shards.
fn check_dual(args: &FitArgs, n: usize, p: usize) -> anyhow::Result<()> {
    if !args.dual {
        return Ok(());
    }
    if p <= n {
        return Err(usage(format!(
            "--dual: {} has {n} rows and {p} columns; the dual form is for more columns than \
             rows (otherwise the weights are the smaller model): leave out --dual",
            args.x.display()
        )));
    }
    if args.shard.is_some() {
        return Err(usage(
            "--dual with --shard: shards are merged as weights; fit the dual form whole",
        ));
    }
    if args.device != "cpu" {
        return Err(usage(format!(
            "--dual with --device {}: the dual form is fitted on the CPU",
            args.device
        )));
    }
    Ok(())
}

/// `k/N` → shard, 0-based, checked against the target count.
fn parse_shard(text: &str, n_targets: usize) -> anyhow::Result<Shard> {
    let bad = || {
        usage(format!(
            "--shard: expected k/N with 0 ≤ k < N (0-based), found '{text}'"
        ))
    };
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let index: usize = k.trim().parse().map_err(|_| bad())?;
    let count: usize = n.trim().parse().map_err(|_| bad())?;
    if count == 0 || index >= count {
        return Err(usage(format!(
            "--shard {text}: k must be between 0 and {} (shards are 0-based)",
            count.saturating_sub(1)
        )));
    }
    if count > n_targets {
        return Err(usage(format!(
            "--shard {text}: {count} shards but Y has only {n_targets} targets"
        )));
    }
    Ok(Shard { index, count })
}

fn parse_cv(text: &str, groups: Option<Vec<i64>>) -> anyhow::Result<Cv> {
    if text == "loo" || text == "gcv" {
        if groups.is_some() {
            return Err(usage(format!(
                "--groups needs K-fold cross-validation (e.g. --cv 5), not --cv {text}"
            )));
        }
        return Ok(if text == "loo" { Cv::Loo } else { Cv::Gcv });
    }
    let n_folds: usize = text.parse().map_err(|_| {
        usage(format!(
            "--cv: expected loo, gcv or a number of folds ≥ 2, found '{text}'"
        ))
    })?;
    if n_folds < 2 {
        return Err(usage(format!(
            "--cv: need at least 2 folds, found {n_folds}"
        )));
    }
    Ok(Cv::KFold { n_folds, groups })
}

fn read_groups(path: &Path, n_rows: usize, x_path: &Path) -> anyhow::Result<Vec<i64>> {
    brainrecon_data::error::require_file(path, "group labels as an integer .npy file")?;
    let groups = npy::read_i64(path)?;
    if groups.shape.len() != 1 || groups.data.len() != n_rows {
        return Err(DataError::invalid(
            path,
            "shape",
            format!("({n_rows},): one label per row of {}", x_path.display()),
            format!("{:?}", groups.shape),
        )
        .into());
    }
    Ok(groups.data)
}

fn fit(args: FitArgs) -> anyhow::Result<()> {
    if let Some(threads) = args.threads {
        brainrecon_ridge::set_threads(threads);
    }
    // every argument and file is checked before any work or output
    let alphas = match &args.alphas {
        Some(text) => parse_alphas(text)?,
        None => brainrecon_routes::decoders::standard_alphas(),
    };
    if args.target_chunk == 0 {
        return Err(usage("--target-chunk must be ≥ 1"));
    }
    let device = ridge_device(&args.device)?;
    let x = read_matrix(&args.x, "X (n, p)")?;
    let y = read_matrix(&args.y, "Y (n, t)")?;
    if y.rows != x.rows {
        return Err(DataError::invalid(
            &args.y,
            "rows",
            format!("{} rows, one per row of {}", x.rows, args.x.display()),
            y.rows.to_string(),
        )
        .into());
    }
    if x.rows < 2 {
        return Err(
            DataError::invalid(&args.x, "rows", "at least 2 rows", x.rows.to_string()).into(),
        );
    }
    let groups = match &args.groups {
        Some(path) => Some(read_groups(path, x.rows, &args.x)?),
        None => None,
    };
    let cv = parse_cv(&args.cv, groups)?;
    let shard = match &args.shard {
        Some(text) => Some(parse_shard(text, y.cols)?),
        None => None,
    };
    let estimator = RidgeCv {
        alphas,
        cv,
        fit_intercept: args.intercept,
        standardize: args.standardize,
        target_chunk: args.target_chunk,
        precision: args.precision.into(),
        device,
        dual: args.dual,
        ..RidgeCv::default()
    };
    check_dual(&args, x.rows, x.cols)?;
    if device != brainrecon_ridge::Device::Cpu && matches!(estimator.cv, Cv::KFold { .. }) {
        return Err(usage(format!(
            "--device {}: K-fold cross-validation runs on the CPU only; use --cv gcv or --cv loo \
             on a GPU",
            args.device
        )));
    }
    let x_view = row_major_view("X", &x.data, (x.rows, x.cols))?;
    let y_view = row_major_view("Y", &y.data, (y.rows, y.cols))?;
    let started = std::time::Instant::now();
    let mut model = match shard {
        Some(shard) => estimator.fit_shard(x_view, y_view, shard)?,
        None => estimator.fit(x_view, y_view)?,
    };
    let seconds = started.elapsed().as_secs_f64();
    for (key, value) in [
        ("x", serde_json::json!(args.x)),
        ("y", serde_json::json!(args.y)),
        ("shard", serde_json::json!(args.shard)),
        ("groups", serde_json::json!(args.groups)),
    ] {
        model.metadata.insert(key.into(), value);
    }
    model.save(&args.out)?;
    let mut chosen = model.alphas.clone();
    chosen.sort_by(f64::total_cmp);
    let range = model.target_range;
    let summary = serde_json::json!({
        "model": args.out,
        "n_samples": x.rows,
        "n_features": x.cols,
        "n_targets": y.cols,
        "target_range": [range.start, range.end],
        "solver": model.options.solver,
        "form": if model.dual.is_some() { "dual" } else { "primal" },
        "cv": model.options.cv,
        "median_alpha": chosen[chosen.len() / 2],
        "seconds": seconds,
        "device": device.to_string(),
    });
    if args.json {
        return super::print_json(&summary);
    }
    outln!(
        "fitted {} × {} → targets {}..{} of {} ({:?} solver) in {:.2} s (median alpha {:.3e}); saved {}",
        x.rows,
        x.cols,
        range.start,
        range.end,
        y.cols,
        model.options.solver,
        seconds,
        chosen[chosen.len() / 2],
        args.out.display()
    )?;
    Ok(())
}

/// Join target shards fitted with `ridge fit --shard k/N` into one model.
///
/// The shards may be given in any order; together they must cover every target exactly once,
/// and share X, the alpha grid and the options.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon ridge merge --models shards/0 shards/1 shards/2 shards/3 --out model"
)]
pub struct MergeArgs {
    /// Shard model directories
    #[arg(long, num_args = 1.., required = true)]
    models: Vec<PathBuf>,
    /// Merged model directory to write
    #[arg(long)]
    out: PathBuf,
}

fn merge(args: MergeArgs) -> anyhow::Result<()> {
    // one shard in memory at a time: at NSD's c size the weights are gigabytes
    let (n_features, n_targets) = brainrecon_ridge::merge_saved(&args.models, &args.out)?;
    outln!(
        "merged {} shards: {n_features} features → {n_targets} targets; saved {}",
        args.models.len(),
        args.out.display()
    )?;
    Ok(())
}

/// Predict Y (n, t) from X (n, p) with a model from `ridge fit` or `ridge merge`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon ridge predict --model model --x X_test.npy --out P.npy"
)]
pub struct PredictArgs {
    /// Model directory
    #[arg(long)]
    model: PathBuf,
    /// Predictors, (n, p) .npy with the model's p columns
    #[arg(long)]
    x: PathBuf,
    /// Predictions to write, float32 (n, t) .npy
    #[arg(long)]
    out: PathBuf,
    /// Threads (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
}

fn predict(args: PredictArgs) -> anyhow::Result<()> {
    if let Some(threads) = args.threads {
        brainrecon_ridge::set_threads(threads);
    }
    let model = RidgeModel::load(&args.model)?;
    let x = read_matrix(&args.x, "X (n, p)")?;
    if x.cols != model.n_features() {
        return Err(DataError::invalid(
            &args.x,
            "columns",
            format!(
                "{} columns, the feature count of the model {}",
                model.n_features(),
                args.model.display()
            ),
            x.cols.to_string(),
        )
        .into());
    }
    let pred = model.predict_row_major(&x.data, (x.rows, x.cols))?;
    npy::write(&args.out, &[x.rows, model.n_targets()], &pred)?;
    outln!(
        "predicted {} rows × {} targets; saved {}",
        x.rows,
        model.n_targets(),
        args.out.display()
    )?;
    Ok(())
}

/// Score predictions against the truth, per target: Pearson r and R² (scikit-learn `r2_score`).
///
/// Prints their mean and median over targets (constant columns, whose r is undefined, are
/// skipped). `--out-prefix P` also writes the per-target values to `P_r.npy` and `P_r2.npy`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon ridge score --pred P.npy --y Y_test.npy --out-prefix scores/test --json"
)]
pub struct ScoreArgs {
    /// Predictions, (n, t) .npy
    #[arg(long)]
    pred: PathBuf,
    /// Truth, (n, t) .npy
    #[arg(long)]
    y: PathBuf,
    /// Write per-target arrays PREFIX_r.npy and PREFIX_r2.npy (float64, (t,))
    #[arg(long)]
    out_prefix: Option<PathBuf>,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

fn score(args: ScoreArgs) -> anyhow::Result<()> {
    let pred = read_matrix(&args.pred, "predictions (n, t)")?;
    let truth = read_matrix(&args.y, "Y (n, t)")?;
    if (pred.rows, pred.cols) != (truth.rows, truth.cols) {
        return Err(DataError::invalid(
            &args.pred,
            "shape",
            format!(
                "({}, {}), the shape of {}",
                truth.rows,
                truth.cols,
                args.y.display()
            ),
            format!("({}, {})", pred.rows, pred.cols),
        )
        .into());
    }
    let p = row_major_view("predictions", &pred.data, (pred.rows, pred.cols))?;
    let y = row_major_view("Y", &truth.data, (truth.rows, truth.cols))?;
    let r = pearson_per_target(y, p)?;
    let r2 = r2_per_target(y, p)?;
    if let Some(prefix) = &args.out_prefix {
        let with_suffix = |suffix: &str| {
            let mut name = prefix.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        npy::write(&with_suffix("_r.npy"), &[r.len()], &r)?;
        npy::write(&with_suffix("_r2.npy"), &[r2.len()], &r2)?;
    }
    let (r_sum, r2_sum) = (summarize(&r), summarize(&r2));
    let summary = serde_json::json!({
        "n_samples": truth.rows,
        "n_targets": truth.cols,
        "pearson_r": {"mean": r_sum.mean, "median": r_sum.median},
        "r2": {"mean": r2_sum.mean, "median": r2_sum.median},
        "undefined_r": r.iter().filter(|v| !v.is_finite()).count(),
    });
    if args.json {
        return super::print_json(&summary);
    }
    outln!(
        "{} targets over {} samples: Pearson r mean {:.4} median {:.4}; R² mean {:.4} median {:.4}",
        truth.cols,
        truth.rows,
        r_sum.mean,
        r_sum.median,
        r2_sum.mean,
        r2_sum.median
    )?;
    Ok(())
}
