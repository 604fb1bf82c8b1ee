//! `brainrecon music fit`: music embeddings decoded from the fMRI of 10-s windows.

use crate::commands::prelude::*;
use brainrecon_routes::music::{
    default_alphas, fit_music, EmbeddingKind, MusicFitOptions, WindowSpec,
};

/// Decode music embeddings of 10-s windows from the fMRI inside them (Brain2Music): one ridge
/// model per atlas ROI (alpha by K-fold CV over clips), the best ROIs' predictions averaged,
/// scored by identification accuracy on the test clips (chance 0.5).
///
/// Windows: each clip of the events (genre, track, start; ds003720's columns) is cut into
/// windows of --window seconds advanced --step; a window's target is the embedding of its
/// audio (clap-audio, encodec) or of its clip's caption (clap-text), its fMRI the mean of the
/// scans acquired inside it (shifted by --delay), test clips averaged over their repeats.
///
/// Every input (run set, model, the tracks the events name, atlas, captions) is checked before
/// the first window is embedded, and every problem is reported at once (exit 2). A clip may
/// end up to 0.1 s past the end of its track (its tail is then silence); further is refused.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon simulate --kind music --out sim-music\n  \
    brainrecon bids prepare --bids-root sim-music --subject 001 --task Training --task Test --mask sim-music/derivatives/mask/sub-001_mask.nii.gz --out runs-music\n  \
    brainrecon music fit --runs runs-music --stimuli sim-music/stimuli/genres --atlas sim-music/derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz --out music-fit"
)]
pub struct Args {
    /// A run set of the Training and Test runs (`brainrecon bids prepare`)
    #[arg(long)]
    runs: PathBuf,
    /// The GTZAN folder: <genre>/<genre>.NNNNN.wav (also genres/ or genres_original/ inside)
    #[arg(long)]
    stimuli: PathBuf,
    /// Cortical ROI labels on the runs' grid (.nii/.nii.gz; e.g. Destrieux)
    #[arg(long)]
    atlas: PathBuf,
    /// index<TAB>name table of the atlas's labels (default: the atlas's .tsv beside it)
    #[arg(long)]
    atlas_names: Option<PathBuf>,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// clap-audio (MuLan-music's stand-in), clap-text (MuLan-text's) or encodec (SoundStream's)
    #[arg(long, default_value = "clap-audio")]
    embedding: String,
    /// CLAP: genres-clap (built in), a folder or a cached hub id (laion/clap-htsat-unfused);
    /// EnCodec: a folder or hub id (facebook/encodec_24khz)
    #[arg(long, default_value = "genres-clap")]
    model: String,
    /// track<TAB>start<TAB>caption per clip (clap-text)
    #[arg(long)]
    captions: Option<PathBuf>,
    /// ROIs whose predictions are averaged (the best by CV score)
    #[arg(long, default_value_t = 6)]
    top_rois: usize,
    /// Folds of the CV over clips
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Ridge penalties tried (default 10^0 … 10^6 in half decades)
    #[arg(long, value_delimiter = ',')]
    alphas: Option<Vec<f64>>,
    /// Seconds of audio per window
    #[arg(long, default_value_t = 10.0)]
    window: f64,
    /// Seconds between windows
    #[arg(long, default_value_t = 1.5)]
    step: f64,
    /// Seconds the scans are shifted after the audio (0: the scans inside the window)
    #[arg(long, default_value_t = 0.0)]
    delay: f64,
    /// The task whose runs are the test runs
    #[arg(long, default_value = "Test")]
    test_task: String,
    /// Keep each run's first clip (ds003720's analyses drop it: it repeats a clip)
    #[arg(long)]
    keep_first_clip: bool,
    /// ROIs with fewer voxels are left out
    #[arg(long, default_value_t = 10)]
    min_roi_voxels: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = MusicFitOptions {
        runs: args.runs,
        stimuli: args.stimuli,
        atlas: args.atlas,
        atlas_names: args.atlas_names,
        out: args.out,
        embedding: EmbeddingKind::parse(&args.embedding)?,
        model: args.model,
        captions: args.captions,
        windows: WindowSpec {
            seconds: args.window,
            step: args.step,
            delay: args.delay,
        },
        top_rois: args.top_rois,
        folds: args.folds,
        alphas: args.alphas.unwrap_or_else(default_alphas),
        test_task: args.test_task,
        drop_first: !args.keep_first_clip,
        min_roi_voxels: args.min_roi_voxels,
        seed: args.seed,
        progress: show_progress(),
    };
    let summary = fit_music(&opts, &args.device.device()?)?;
    report(args.json.json, &summary, |_| summary.text(&opts.out))
}
