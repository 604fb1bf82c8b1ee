use crate::args::JsonArg;
use brainrecon_simulate::events::{simulate_events, EventsOptions};
use brainrecon_simulate::movie::{simulate_movie, MovieOptions};
use brainrecon_simulate::music::{simulate_music, MusicOptions};
use brainrecon_simulate::video::{simulate_video, VideoOptions};
use brainrecon_simulate::{
    simulate, OutputLayout, SimulateOptions, NSD_IMAGES, NSD_SESSIONS, NSD_VOLUME,
};
use std::path::PathBuf;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Images shown one per trial, NSD-style (one beta per image)
    Image,
    /// A movie watched continuously: BOLD runs at TR 1 s in BIDS, with per-second annotations
    Movie,
    /// Music clips heard in runs at TR 1.5 s, in ds003720's BIDS layout, with GTZAN-like audio
    Music,
    /// Clips of moving shapes watched in segments at TR 2 s, in CC2017's layout (CIFTI-2 runs)
    Video,
    /// An event-related image experiment: raw BIDS runs and events, and fMRIPrep's derivatives
    Events,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Size {
    /// 300 images in 3 sessions, a 24 × 30 × 20 volume (seconds to make); --kind music: 5
    /// clips per genre, 20 per run, 18-s tracks, a 16 × 16 × 10 volume
    Small,
    /// NSD's size: 9250 images × 3 repeats = 37 sessions of 750 trials, 81 × 104 × 83 voxels
    Nsd,
    /// ds003720's design (--kind music): 54 clips per genre, 480 training clips in 12 runs of
    /// 40, 60 test clips heard 4 times in 6 runs, 30-s tracks; --kind video: CC2017's 18
    /// training segments × 2 and 5 test segments × 10 of 240 TRs
    Paper,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Layout {
    /// NSD's own directory tree and file formats (an NSD root for `nsd prepare`)
    Nsd,
    /// A prepared subject, ready for `fit`
    Prepared,
}

/// Make a synthetic subject with known ground truth.
///
/// --kind image (default): stimuli are procedural scenes (shape, colour, background, position,
/// size) with 5 captions each. Early visual voxels have receptive fields over luminance and
/// contrast; higher visual voxels are tuned to the scene's attributes. Each image is shown 3
/// times, with NSD-like noise, in NSD's layout.
///
/// --kind movie: a subject watching a movie, in BIDS as OpenNeuro ships it (sub-01, task
/// movie, int16 BOLD at TR 1 s, events, a brain mask in derivatives/mask) with per-second
/// annotations of five kinds (speech, objects, story, summary, timeplace) in ds005531's
/// layout. Voxel groups respond to one kind's hidden semantics each (one group to two, one to
/// none) through the canonical HRF, with slow drift and noise: read it with `bids prepare`.
///
/// --kind music: a subject hearing 15-s clips of 10 synthetic genres (named as GTZAN's; each a
/// recipe of tempo, drum pattern, instruments, key and mode), in ds003720's BIDS layout
/// (sub-001, tasks Training and Test, int16 BOLD at TR 1.5 s, events with genre, track and
/// start), the tracks as stimuli/genres/<genre>/<genre>.000NN.wav (22050 Hz mono 16-bit), a
/// Destrieux-named ROI atlas in derivatives/atlas and a brain mask in derivatives/mask.
/// Auditory ROIs follow the clips' acoustic features per TR, higher ROIs their genre and mood
/// (from the captions in truth/clips.json), the others noise. Training clips are heard once,
/// test clips 4 times. Small by default; --size paper is the paper's 540 clips.
///
/// --kind video: a subject watching clips of moving shapes (a scene's shape moving left,
/// right, up or down, or still; 1–3 TRs each, cut at TR boundaries) in CC2017's layout:
/// subject1/fmri/segK/cifti/segK_R_Atlas.dtseries.nii (training segments, each seen twice) and
/// testK/cifti/testK_R_Atlas.dtseries.nii (test segments, seen 4 times; 10 with --size paper),
/// CIFTI-2 dense time series at TR 2 s over two cortical surfaces and a small subcortical
/// model; the frames as stimuli/<segment>/frame_NNNNNN.png with frames.json (3 fps, 6 frames
/// per TR). Early voxels follow the frames' retinotopic contrast and direction-tuned motion
/// energy, higher voxels the shape and colour, the rest noise. Small by default (4 + 2
/// segments of 40 TRs); read it with `video prepare`.
///
/// The truth is written to `truth/` beside the data.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon simulate --out sim-nsd --images 300 --seed 1\n  brainrecon simulate --size nsd --out sim-nsd-full   (NSD's size: ~11 GB of betas)\n  brainrecon nsd prepare --nsd-root sim-nsd --subject subj01 --out subj01\n  \
    brainrecon simulate --kind movie --out sim-movie --runs 4 --run-seconds 300 --seed 1\n  brainrecon bids prepare --bids-root sim-movie --subject 01 --task movie --out runs-sub01"
)]
#[command(mut_arg("json", |a| a.help("Print the truth summary as JSON")))]
pub struct Args {
    /// Output directory (new or empty)
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = Kind::Image)]
    kind: Kind,
    /// Movie runs (--kind movie; default 4)
    #[arg(long)]
    runs: Option<usize>,
    /// Seconds per movie run (--kind movie; default 300)
    #[arg(long)]
    run_seconds: Option<usize>,
    /// Clips per genre, 1/9 of them test clips (--kind music; default 5; 54 with --size paper)
    #[arg(long)]
    clips_per_genre: Option<usize>,
    /// Clips per run, a multiple of 4 (--kind music; default 20; 40 with --size paper)
    #[arg(long)]
    clips_per_run: Option<usize>,
    /// Seconds of each GTZAN-like track, at least 15 (--kind music; default 18; 30 with --size
    /// paper)
    #[arg(long)]
    track_seconds: Option<f64>,
    /// Tracks per genre in library/, a music library nobody heard, for `music retrieve`
    /// (--kind music; default 5; 20 with --size paper)
    #[arg(long)]
    library_per_genre: Option<usize>,
    /// Size preset; --images, --sessions and --volume override its parts
    #[arg(long, value_enum, default_value_t = Size::Small)]
    size: Size,
    /// Number of distinct images, 10% of them the shared test images (default 300; 9250 with
    /// --size nsd)
    #[arg(long)]
    images: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = Layout::Nsd)]
    layout: Layout,
    /// Subject to simulate (subj01 … subj08; --kind video: N of subjectN, default 1)
    #[arg(long, default_value = "subj01")]
    subject: String,
    /// Side of the square stimulus images (--kind video: frames), in pixels
    #[arg(long, default_value_t = 64)]
    image_size: usize,
    /// Number of scanning sessions the trials are split into (default 3; 37 with --size nsd)
    #[arg(long)]
    sessions: Option<usize>,
    /// Betas volume X,Y,Z in voxels (default 24,30,20; 81,104,83 with --size nsd; --kind music:
    /// the BOLD volume, default 16,16,10)
    #[arg(long, value_delimiter = ',')]
    volume: Option<Vec<usize>>,
    #[command(flatten)]
    json: JsonArg,
}

fn run_movie(args: Args) -> anyhow::Result<()> {
    let mut opts = MovieOptions::new(&args.out);
    opts.runs = args.runs.unwrap_or(opts.runs);
    opts.run_seconds = args.run_seconds.unwrap_or(opts.run_seconds);
    opts.seed = args.seed;
    let simulated = simulate_movie(&opts)?;
    let t = &simulated.truth;
    if args.json.json {
        let mut summary = serde_json::to_value(t)?;
        summary["out"] = serde_json::json!(simulated.out);
        return super::print_json(&summary);
    }
    outln!(
        "simulated {} watching a movie at {}: {} runs of {} s at TR {} s, {} brain voxels in {} groups",
        t.subject,
        simulated.out.display(),
        t.runs,
        t.run_seconds,
        t.tr,
        t.n_brain_voxels,
        t.groups.len()
    )?;
    Ok(())
}

/// --kind events: 7 runs at TR 2 s of 60 trials (3-s images every 4 s), training images shown
/// twice and test images three times; --runs and --images (training + test, one in six a test
/// image) and --volume change it.
fn run_events(args: Args) -> anyhow::Result<()> {
    if args.size != Size::Small || args.sessions.is_some() || args.run_seconds.is_some() {
        return Err(super::usage(
            "--size, --sessions and --run-seconds do not apply to --kind events",
        ));
    }
    let mut opts = EventsOptions::new(&args.out);
    opts.seed = args.seed;
    opts.runs = args.runs.unwrap_or(opts.runs);
    opts.image_size = args.image_size;
    if let Some(images) = args.images {
        opts.test_images = (images / 6).max(2);
        opts.train_images = images.saturating_sub(opts.test_images);
    }
    if let Some(volume) = &args.volume {
        opts.volume_shape = parse_volume(volume)?;
    }
    let truth = simulate_events(&opts)?;
    if args.json.json {
        let mut summary = serde_json::to_value(&truth)?;
        summary["out"] = serde_json::json!(args.out);
        return super::print_json(&summary);
    }
    outln!(
        "simulated an event-related experiment at {}: {} runs of {} volumes at TR {} s, {} trials of {} images ({} test), {} brain voxels ({} visual); fMRIPrep's derivatives in derivatives/fmriprep",
        args.out.display(),
        truth.runs,
        truth.n_volumes,
        truth.tr,
        truth.trials.len(),
        truth.images.len(),
        truth.images.len() - truth.n_train_images,
        truth.brain_voxels,
        truth.visual_voxels
    )?;
    Ok(())
}

fn parse_volume(volume: &[usize]) -> anyhow::Result<[usize; 3]> {
    match volume[..] {
        [x, y, z] => Ok([x, y, z]),
        _ => Err(super::usage(format!(
            "--volume: expected X,Y,Z (three sizes), found {} values",
            volume.len()
        ))),
    }
}

fn run_music(args: Args) -> anyhow::Result<()> {
    if args.runs.is_some() || args.run_seconds.is_some() {
        return Err(super::usage(
            "--runs and --run-seconds apply to --kind movie",
        ));
    }
    if args.images.is_some() || args.sessions.is_some() {
        return Err(super::usage(
            "--images and --sessions apply to --kind image",
        ));
    }
    let mut opts = match args.size {
        Size::Small => MusicOptions::new(&args.out),
        Size::Paper => MusicOptions::paper(&args.out),
        Size::Nsd => {
            return Err(super::usage(
                "--size nsd applies to --kind image (music: small or paper)",
            ))
        }
    };
    opts.clips_per_genre = args.clips_per_genre.unwrap_or(opts.clips_per_genre);
    opts.clips_per_run = args.clips_per_run.unwrap_or(opts.clips_per_run);
    opts.track_seconds = args.track_seconds.unwrap_or(opts.track_seconds);
    opts.library_per_genre = args.library_per_genre.unwrap_or(opts.library_per_genre);
    if let Some(volume) = &args.volume {
        opts.volume_shape = parse_volume(volume)?;
    }
    opts.seed = args.seed;
    let simulated = simulate_music(&opts)?;
    let t = &simulated.truth;
    if args.json.json {
        let mut summary = serde_json::to_value(t)?;
        summary["out"] = serde_json::json!(simulated.out);
        return super::print_json(&summary);
    }
    outln!(
        "simulated {} hearing music at {}: {} training clips, {} test clips × {}, {} runs at TR {} s, {} brain voxels ({} acoustic, {} semantic)",
        t.subject,
        simulated.out.display(),
        t.n_train_clips,
        t.n_test_clips,
        t.test_repeats,
        t.runs.len(),
        t.tr,
        t.n_brain_voxels,
        t.group_voxels[0],
        t.group_voxels[1]
    )?;
    Ok(())
}

/// `1`, `subject1` or the default `subj01`.
fn video_subject(text: &str) -> anyhow::Result<usize> {
    let digits = text
        .trim()
        .trim_start_matches("subject")
        .trim_start_matches("subj");
    digits
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=99).contains(n))
        .ok_or_else(|| {
            super::usage(format!(
                "--subject: expected a subject number such as 1 (subject1), found '{text}'"
            ))
        })
}

fn run_video(args: Args) -> anyhow::Result<()> {
    if args.runs.is_some() || args.run_seconds.is_some() {
        return Err(super::usage(
            "--runs and --run-seconds apply to --kind movie",
        ));
    }
    if args.images.is_some() || args.sessions.is_some() || args.volume.is_some() {
        return Err(super::usage(
            "--images, --sessions and --volume apply to --kind image",
        ));
    }
    let mut opts = match args.size {
        Size::Small => VideoOptions::new(&args.out),
        Size::Paper => VideoOptions::paper(&args.out),
        Size::Nsd => {
            return Err(super::usage(
                "--size nsd applies to --kind image (video: small or paper)",
            ))
        }
    };
    opts.seed = args.seed;
    opts.subject = video_subject(&args.subject)?;
    opts.frame_size = args.image_size;
    opts.progress = super::show_progress();
    let simulated = simulate_video(&opts)?;
    let t = &simulated.truth;
    if args.json.json {
        let mut summary = serde_json::to_value(t)?;
        summary["out"] = serde_json::json!(simulated.out);
        return super::print_json(&summary);
    }
    let d = &t.design;
    outln!(
        "simulated {} watching moving shapes at {}: {} training segments × {}, {} test segments × {}, {} TRs of {} s, {} frames per TR ({} px), {} grayordinates ({} cortical)",
        t.subject,
        simulated.out.display(),
        d.train_segments,
        d.train_repetitions,
        d.test_segments,
        d.test_repetitions,
        d.n_tr,
        d.tr,
        d.frames_per_tr,
        t.frame_size,
        t.n_grayordinates,
        t.n_cortex
    )?;
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.kind != Kind::Music
        && (args.clips_per_genre.is_some()
            || args.clips_per_run.is_some()
            || args.track_seconds.is_some()
            || args.library_per_genre.is_some())
    {
        return Err(super::usage(
            "--clips-per-genre, --clips-per-run, --track-seconds and --library-per-genre apply to --kind music",
        ));
    }
    if args.kind == Kind::Music {
        return run_music(args);
    }
    if args.kind == Kind::Video {
        return run_video(args);
    }
    if args.size == Size::Paper {
        return Err(super::usage(
            "--size paper applies to --kind music and video",
        ));
    }
    if args.kind == Kind::Events {
        return run_events(args);
    }
    if args.kind == Kind::Movie {
        if args.size != Size::Small || args.volume.is_some() {
            return Err(super::usage("--size and --volume apply to --kind image"));
        }
        return run_movie(args);
    }
    if args.runs.is_some() || args.run_seconds.is_some() {
        return Err(super::usage(
            "--runs and --run-seconds apply to --kind movie",
        ));
    }
    let mut opts = SimulateOptions::new(&args.out);
    if args.size == Size::Nsd {
        opts.n_images = NSD_IMAGES;
        opts.sessions = NSD_SESSIONS;
        opts.volume_shape = NSD_VOLUME;
    }
    opts.n_images = args.images.unwrap_or(opts.n_images);
    opts.sessions = args.sessions.unwrap_or(opts.sessions);
    if let Some(volume) = &args.volume {
        opts.volume_shape = parse_volume(volume)?;
    }
    opts.seed = args.seed;
    opts.layout = match args.layout {
        Layout::Nsd => OutputLayout::Nsd,
        Layout::Prepared => OutputLayout::Prepared,
    };
    opts.subject = brainrecon_data::nsd::parse_subject(&args.subject)?;
    opts.image_size = args.image_size;
    opts.progress = super::show_progress();
    let simulated = simulate(&opts)?;
    let t = &simulated.truth;
    if args.json.json {
        let mut summary = serde_json::to_value(t)?;
        summary.as_object_mut().map(|o| o.remove("scenes"));
        summary["out"] = serde_json::json!(simulated.out);
        return super::print_json(&summary);
    }
    outln!(
        "simulated {} at {}: {} images, {} sessions, {} train trials, {} test images, {} nsdgeneral voxels",
        t.subject,
        simulated.out.display(),
        t.n_images,
        t.sessions.len(),
        t.n_train_trials,
        t.n_test_images,
        t.rois.get("nsdgeneral").copied().unwrap_or(0)
    )?;
    Ok(())
}
