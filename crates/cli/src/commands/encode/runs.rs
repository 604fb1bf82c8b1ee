//! `brainrecon encode-runs`: banded encoding models of naturalistic runs (the work is in
//! `brainrecon_routes::naturalistic`).

use crate::commands::prelude::*;
use brainrecon_routes::decode::options::parse_alphas;
use brainrecon_routes::naturalistic::{
    check_search, encode_run_set, Align, Band, Delays, EncodeRunsOptions,
};

/// Voxelwise encoding of continuous runs with banded ridge (Nakagi et al. 2024).
///
/// Each band is a feature space: an annotation kind of the run set (ds005531's
/// `objectiveAnnot50chara`, `speechTranscription`, `speechTranscription_EN`, `story`; the
/// simulator's `speech`, `objects`, …), turned into text features per second by
/// `--text-model` (ds005531's markup parsed as its authors do, Japanese segmented into
/// words, features averaged over annotators); `KIND:FEATURES`, the dataset's own features of a
/// kind (ds005531's derivatives/feature/<title>_run-NN_<KIND>_<FEATURES>_mean.mat, e.g.
/// `story:GPT2medium_jp_layer12`; `--dataset-features` sets it for every kind); or `NAME=DIR`
/// with one float32 `DIR/<run>.npy` per run, or the `<title>_run-NN_<NAME>_each1sec.npy` that
/// `features text` writes (a row per TR, per second, or per second from the recording's start,
/// then cut). Bands whose features are all zero or mostly out of the text model's vocabulary
/// are refused (`--allow-weak-bands` fits them). Rows are aligned to the TRs (`--align
/// mean|lanczos`), standardised on the training runs, reduced by PCA (`--pca`), and delayed
/// within each run (`--delays`, FIR copies, or `--delay-mean`, the papers' average of shifted
/// copies). Banded ridge fits one penalty per band and voxel by random search over band
/// weights (himalaya's MultipleKernelRidgeCV), with leave-one-run-out CV on the training runs
/// (`--folds K`: K contiguous blocks of every training run instead, for a single training run);
/// the test runs (`--test-runs`, default the last) give r, R², the product-measure split of R²
/// per band, block-permutation p (blocks of `--block` TRs) and BH-FDR q. `--unique` also fits
/// every model without one band: unique variance = R²(all) − R²(all but the band).
///
/// Writes OUT/encoding.json, r/r2/p/q.npy, r2_split.npy and unique.npy (bands × voxels), maps
/// as NIfTI in the subject's volume (OUT/maps/) and OUT/report.html; with a cortex
/// (`--cortex`), OUT/cortex/: flat and inflated pictures of each map (and each voxel's best band),
/// a viewer page, and the maps as .func.gii / .dscalar.nii.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon simulate --kind movie --out sim-movie\n  brainrecon bids prepare --bids-root sim-movie --subject 01 --task movie --mask sim-movie/derivatives/mask/sub-01_mask.nii.gz --out runs/sub-01\n  brainrecon encode-runs --subject runs/sub-01 --bands speech,objects,story,summary,timeplace --unique --out enc/sub-01\n  brainrecon bids prepare --layout ds005531 --bids-root ds005531 --subject S01 --task breakingbad --out runs/S01\n  brainrecon encode-runs --subject runs/S01 --bands objectiveAnnot50chara,speechTranscription,story --dataset-features GPT2medium_jp_layer12 --unique --out enc/S01-gpt2"
)]
#[command(mut_arg("device", |a| a.help("cpu, cuda or cuda:N (language models)")))]
pub struct Args {
    /// A prepared run set (bids prepare)
    #[arg(long)]
    subject: PathBuf,
    /// Bands, comma-separated: annotation kinds, or NAME=DIR of per-run feature files
    #[arg(long, value_delimiter = ',', required = true)]
    bands: Vec<String>,
    /// Read every annotation band KIND as the dataset's features KIND:FEATURES (e.g.
    /// GPT2medium_jp_layer12; speechTranscription_EN takes the _en variant)
    #[arg(long)]
    dataset_features: Option<String>,
    /// Fit bands whose features are all zero or mostly out of vocabulary (refused otherwise)
    #[arg(long)]
    allow_weak_bands: bool,
    /// CV folds of contiguous blocks within each training run instead of leave-one-run-out
    #[arg(long)]
    folds: Option<usize>,
    /// Text model of annotation bands: word2vec-movie (built in), a word2vec file, or a
    /// transformers folder / model id (GPT-2, BERT, Llama)
    #[arg(long, default_value = "word2vec-movie")]
    text_model: String,
    /// Language models: hidden state L (0 = embeddings) or `last`
    #[arg(long, default_value = "last")]
    layer: String,
    /// Test runs, comma-separated names (default: the last run)
    #[arg(long, value_delimiter = ',')]
    test_runs: Vec<String>,
    /// mean (of the seconds in each TR) or lanczos
    #[arg(long, default_value = "mean")]
    align: String,
    /// FIR delays in TRs, comma-separated (default: every TR from 2 s to 8 s)
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    delays: Vec<i64>,
    /// Instead of FIR: the mean of copies shifted by these TRs (e.g. 8,9,10 at TR 1 s)
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    delay_mean: Vec<i64>,
    /// Keep this many principal components of each band (fit on the training runs)
    #[arg(long)]
    pca: Option<usize>,
    /// Alpha grid, comma-separated
    #[arg(long, default_value = "1,10,100,1000,10000,100000")]
    alphas: String,
    /// Band-weight candidates of the random search
    #[arg(long, default_value_t = 20)]
    n_iter: usize,
    /// Permutations of the test TRs in the null
    #[arg(long, default_value_t = 1000)]
    permutations: usize,
    /// TRs permuted together
    #[arg(long, default_value_t = 10)]
    block: usize,
    /// Also fit every model without one band (unique variance)
    #[arg(long)]
    unique: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    cortex: CortexArg,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

fn options(args: &Args) -> anyhow::Result<EncodeRunsOptions> {
    let bands = args
        .bands
        .iter()
        .map(|b| {
            Band::parse(b).map(|band| band.with_dataset_features(args.dataset_features.as_deref()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let align = Align::parse(&args.align)?;
    let delays = Delays::from_lists(&args.delays, &args.delay_mean)?;
    check_search(args.n_iter, args.block, args.pca)?;
    Ok(EncodeRunsOptions {
        out: args.out.clone(),
        bands,
        test_runs: args.test_runs.clone(),
        folds: args.folds,
        allow_weak_bands: args.allow_weak_bands,
        align,
        delays,
        pca: args.pca,
        alphas: parse_alphas(&args.alphas)?,
        n_iter: args.n_iter,
        permutations: args.permutations,
        block: args.block,
        unique: args.unique,
        seed: args.seed,
        cortex: args.cortex.choice()?,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = options(&args)?;
    let device = args.device.device()?;
    let show = crate::commands::show_progress();
    let started = std::time::Instant::now();
    let summary = encode_run_set(
        &args.subject,
        &opts,
        &args.text_model,
        &args.layer,
        &device,
        &mut |step| {
            if show {
                eprintln!(
                    "encode-runs: {step} ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
            }
        },
    )?;
    for warning in &summary.warnings {
        eprintln!("warning: {warning}");
    }
    crate::commands::report(args.json.json, &summary, |_| summary.text(&args.out))
}
