//! `brainrecon video prepare`: CC2017-style fMRI to windows for the decoders.

use crate::commands::prelude::*;
use brainrecon_datasets::cc2017::{
    prepare, Cc2017Options, RunDetrend, DEFAULT_RELIABILITY_THRESHOLD,
};

/// Read a CC2017 subject's CIFTI runs and write fMRI windows as samples for a decoder
///
/// Output: X_train.npy / X_test.npy (samples, K·V) float32, train_index.npy / test_index.npy
/// (segment, stimulus TR), the repetition averages fmri_train.npy / fmri_test.npy (segments,
/// TRs, V), the voxel mask and reliabilities, and video.json with the settings.
///
/// Per run: the chosen structures (both cortical surfaces by default), cut to the design's TRs
/// (CC2017's 245/246-volume runs as the authors cut them), a least-squares polynomial removed
/// per grayordinate (--detrend-order; by default GLMdenoise's degree for the run's duration,
/// round(minutes / 2): 4 on CC2017's 8-min runs) and a z-score (unless --no-zscore). The
/// repetitions of each segment are averaged. Voxels: those whose test-retest reliability
/// (Pearson r between the presentations of the training segments) exceeds
/// --reliability-threshold (default 0.2), or all with --all-voxels. The sample of stimulus
/// TR t is the average's TRs t+lag … t+lag+window−1 (MinD-Video: --window 2 --lag 0).
///
/// The design is read from design.json at the root (simulated datasets) or is CC2017's: 18
/// training segments × 2, 5 test segments × 10, 240 TRs. A missing run, a run with fewer TRs,
/// or brain models that differ from the first run's are errors naming the file; nothing is
/// left behind.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon simulate --kind video --out sim-video --seed 1\n  \
    brainrecon video prepare --cc2017 sim-video --subject 1 --out video-sub1\n  \
    brainrecon ridge fit --x video-sub1/X_train.npy --y targets.npy --out model\n  \
    brainrecon video prepare --cc2017 video_fmri_dataset --subject 1 --window 2 --lag 2 --reliability-threshold 0.3 --out cc2017-sub1"
)]
#[command(mut_arg("json", |a| a.help("Print the report as JSON")))]
pub struct Args {
    /// Root of the dataset (holding subjectN/fmri/segK/cifti/…)
    #[arg(long)]
    cc2017: PathBuf,
    /// Subject number (subjectN): 1, 2 or 3 in CC2017
    #[arg(long)]
    subject: usize,
    /// Output directory (new or empty)
    #[arg(long)]
    out: PathBuf,
    /// TRs per sample (K)
    #[arg(long, default_value_t = 2)]
    window: usize,
    /// TRs from the stimulus TR to the first TR of its window (L)
    #[arg(long, default_value_t = 0)]
    lag: usize,
    /// Degree of the polynomial removed from each run (0 removes the mean); auto: GLMdenoise's
    /// round(minutes / 2), 4 on CC2017's 8-min runs, 1 on the synthetic subject's 80-s runs
    #[arg(long, default_value = "auto", value_parser = parse_detrend_order, conflicts_with = "no_detrend")]
    detrend_order: RunDetrend,
    /// Do not detrend
    #[arg(long)]
    no_detrend: bool,
    /// Do not z-score each run
    #[arg(long)]
    no_zscore: bool,
    /// Keep grayordinates whose test-retest r exceeds this
    #[arg(long, default_value_t = DEFAULT_RELIABILITY_THRESHOLD, conflicts_with = "all_voxels")]
    reliability_threshold: f64,
    /// Keep every grayordinate of the structures (no reliability mask)
    #[arg(long)]
    all_voxels: bool,
    /// CIFTI structure to keep, repeatable (CORTEX_LEFT, CIFTI_STRUCTURE_THALAMUS_LEFT, …;
    /// default: both cortical surfaces)
    #[arg(long = "structure")]
    structures: Vec<String>,
    #[command(flatten)]
    json: JsonArg,
}

fn parse_detrend_order(text: &str) -> Result<RunDetrend, String> {
    match text {
        "auto" => Ok(RunDetrend::ByDuration),
        _ => text
            .parse()
            .map(RunDetrend::Order)
            .map_err(|_| format!("expected a degree from 0 or auto, found '{text}'")),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut opts = Cc2017Options::new(&args.cc2017, args.subject, &args.out);
    opts.window = args.window;
    opts.lag = args.lag;
    opts.detrend = match args.no_detrend {
        true => RunDetrend::Off,
        false => args.detrend_order,
    };
    opts.zscore = !args.no_zscore;
    opts.reliability_threshold = (!args.all_voxels).then_some(args.reliability_threshold);
    if !args.structures.is_empty() {
        opts.structures = args.structures;
    }
    opts.progress = crate::commands::show_progress();
    let report = prepare(&opts)?;
    crate::commands::report(args.json.json, &report, |_| report.text())
}
