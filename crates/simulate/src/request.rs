//! One entry to every simulator: a [`Request`] names the kind and the parts a user overrides;
//! [`run`] checks that the parts apply to the kind, fills in the kind's options and writes the
//! subject; the [`Summary`] it returns prints as a line ([`Summary::text`]) or as JSON
//! ([`Summary::json`]).

use crate::eeg::{simulate_eeg, EegOptions, SimulatedEeg};
use crate::events::{simulate_events, EventsOptions, EventsTruth};
use crate::movie::{simulate_movie, MovieOptions, SimulatedMovie};
use crate::music::{simulate_music, MusicOptions, SimulatedMusic};
use crate::population::{self, SESSION_TRIALS};
use crate::video::{simulate_video, SimulatedVideo, VideoOptions};
use crate::{
    simulate, Generator, OutputLayout, SimulateOptions, Simulated, NSD_IMAGES, NSD_SESSIONS,
    NSD_VOLUME,
};
use brainrecon_core::error::{DataError, Result};
use std::path::{Path, PathBuf};

/// What is simulated (`--kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Kind {
    /// Images shown one per trial, NSD-style.
    #[cfg_attr(
        feature = "cli",
        value(help = "Images shown one per trial, NSD-style (one beta per image)")
    )]
    Image,
    /// A movie watched continuously (BIDS, ds005531's layout).
    #[cfg_attr(
        feature = "cli",
        value(
            help = "A movie watched continuously: BOLD runs at TR 1 s in BIDS, with per-second annotations"
        )
    )]
    Movie,
    /// Music clips heard in runs (ds003720's layout).
    #[cfg_attr(
        feature = "cli",
        value(
            help = "Music clips heard in runs at TR 1.5 s, in ds003720's BIDS layout, with GTZAN-like audio"
        )
    )]
    Music,
    /// Clips of moving shapes (CC2017's layout).
    #[cfg_attr(
        feature = "cli",
        value(
            help = "Clips of moving shapes watched in segments at TR 2 s, in CC2017's layout (CIFTI-2 runs)"
        )
    )]
    Video,
    /// An event-related image experiment with fMRIPrep's derivatives.
    #[cfg_attr(
        feature = "cli",
        value(
            help = "An event-related image experiment: raw BIDS runs and events, and fMRIPrep's derivatives"
        )
    )]
    Events,
    /// Images seen in rapid serial presentation, recorded with EEG (THINGS-EEG2's layout).
    #[cfg_attr(
        feature = "cli",
        value(help = "Images seen in rapid serial presentation with EEG, in THINGS-EEG2's layout")
    )]
    Eeg,
}

/// A size preset (`--size`); [`Request`]'s explicit parts override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Size {
    /// Seconds to make.
    #[cfg_attr(
        feature = "cli",
        value(
            help = "300 images in 3 sessions, a 24 × 30 × 20 volume (seconds to make); --kind music: 5 clips per genre, 20 per run, 18-s tracks, a 16 × 16 × 10 volume"
        )
    )]
    Small,
    /// NSD's size (`Kind::Image` only).
    #[cfg_attr(
        feature = "cli",
        value(
            help = "NSD's size: 9250 images × 3 repeats = 37 sessions of 750 trials, 81 × 104 × 83 voxels"
        )
    )]
    Nsd,
    /// The paper's design (`Kind::Music` and `Kind::Video`).
    #[cfg_attr(
        feature = "cli",
        value(
            help = "ds003720's design (--kind music): 54 clips per genre, 480 training clips in 12 runs of 40, 60 test clips heard 4 times in 6 runs, 30-s tracks; --kind video: CC2017's 18 training segments × 2 and 5 test segments × 10 of 240 TRs"
        )
    )]
    Paper,
}

/// A simulation as a user asks for it: `None` keeps the kind's default. Parts that do not
/// apply to the kind are refused by [`run`] with a usage error naming the flag.
///
/// With the `cli` feature it is also `brainrecon simulate`'s flags (`clap::Args`), in the order
/// `--help` lists them.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct Request {
    /// Output directory (new or empty).
    #[cfg_attr(feature = "cli", arg(long))]
    pub out: PathBuf,
    /// What is simulated.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = Kind::Image, help = None::<&str>))]
    pub kind: Kind,
    /// Movie runs (`Kind::Movie`, `Kind::Events`).
    #[cfg_attr(
        feature = "cli",
        arg(long, help = "Movie runs (--kind movie; default 4)")
    )]
    pub runs: Option<usize>,
    /// Seconds per movie run.
    #[cfg_attr(
        feature = "cli",
        arg(long, help = "Seconds per movie run (--kind movie; default 300)")
    )]
    pub run_seconds: Option<usize>,
    /// Clips per genre (`Kind::Music`).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Clips per genre, 1/9 of them test clips (--kind music; default 5; 54 with --size paper)"
        )
    )]
    pub clips_per_genre: Option<usize>,
    /// Clips per training run (`Kind::Music`).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Clips per run, a multiple of 4 (--kind music; default 20; 40 with --size paper)"
        )
    )]
    pub clips_per_run: Option<usize>,
    /// Seconds of each track (`Kind::Music`, at least 15).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Seconds of each GTZAN-like track, at least 15 (--kind music; default 18; 30 with --size paper)"
        )
    )]
    pub track_seconds: Option<f64>,
    /// Tracks per genre in the retrieval library (`Kind::Music`).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Tracks per genre in library/, a music library nobody heard, for `music retrieve` (--kind music; default 5; 20 with --size paper)"
        )
    )]
    pub library_per_genre: Option<usize>,
    /// The size preset.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_enum,
            default_value_t = Size::Small,
            help = "Size preset; --images, --sessions and --volume override its parts"
        )
    )]
    pub size: Size,
    /// Distinct images (`Kind::Image`; `Kind::Events`: training + test).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Number of distinct images, 10% of them the shared test images (default 300; 9250 with --size nsd)"
        )
    )]
    pub images: Option<usize>,
    /// Seed of every random draw.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0, help = None::<&str>))]
    pub seed: u64,
    /// Layout of `Kind::Image`.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = OutputLayout::Nsd, help = None::<&str>))]
    pub layout: OutputLayout,
    /// `subj01` … (`Kind::Video`: `1`, `subject1`).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value = "subj01",
            help = "Subject to simulate (subj01 … subj08; --kind video: N of subjectN, default 1)"
        )
    )]
    pub subject: String,
    /// Side of the square images (video: frames) in pixels.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 64,
            help = "Side of the square stimulus images (--kind video: frames), in pixels"
        )
    )]
    pub image_size: usize,
    /// Scan sessions (`Kind::Image`).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Number of scanning sessions the trials are split into (default 3; 37 with --size nsd)"
        )
    )]
    pub sessions: Option<usize>,
    /// Volume (X, Y, Z) as given: three sizes expected.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_delimiter = ',',
            help = "Betas volume X,Y,Z in voxels (default 24,30,20; 81,104,83 with --size nsd; --kind music: the BOLD volume, default 16,16,10)"
        )
    )]
    pub volume: Option<Vec<usize>>,
    /// Subjects of a simulated group (`Kind::Image`; 1 to 8, default 1).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Simulate a group of N subjects (1 to 8; --kind image) in one NSD root (subj01 … subjNN; with --layout prepared OUT/subjNN/ each): every subject sees the shared images, its other images are its own; each has its own volume size, region bounds and SNR. Default 1 (the subject named by --subject)"
        )
    )]
    pub subjects: Option<usize>,
    /// Variance share R of each group subject's individual tuning (0 to 1, default 0.3).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Share of each tuning value's variance that is individual rather than shared by the group (0 to 1; with --subjects above 1; default 0.3)"
        )
    )]
    pub individual_share: Option<f64>,
    /// Images every subject sees (default: a tenth of the images, at least 3; the population
    /// generator: [`population::default_shared`]).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Images every subject sees, the test images (at least 3, fewer than --images; default a tenth of --images)",
            long_help = None::<&str>
        )
    )]
    pub shared_images: Option<usize>,
    /// The image simulator's generative model (`Kind::Image`). [`Generator::Population`]
    /// defaults to 5 subjects, 10 sessions of 750 trials (images: sessions × 250, each shown 3
    /// times) and a per-subject ncsnr from 0.1 to 0.3.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_enum,
            default_value_t = Generator::Fields,
            help = "The image simulator's generative model (--kind image; two independent models)",
            long_help = None::<&str>
        )
    )]
    pub generator: Generator,
    /// Target single-trial ncsnr as given: LOW or LOW,HIGH (the population generator only).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_delimiter = ',',
            help = "Target single-trial ncsnr, LOW or LOW,HIGH: each subject's is drawn uniformly from the range (--generator population; default 0.1,0.3)"
        )
    )]
    pub ncsnr: Option<Vec<f64>>,
    /// Show progress bars (not a flag: the binary draws them when a person watches).
    #[cfg_attr(feature = "cli", arg(skip))]
    pub progress: bool,
}

impl Request {
    /// `brainrecon simulate --kind KIND --out OUT` with every other flag at its default: the
    /// small size, seed 0, NSD's layout, `subj01`, 64-pixel images, no progress bars, and each
    /// kind's own defaults (`None`) for the rest.
    pub fn new(out: impl Into<PathBuf>, kind: Kind) -> Request {
        Request {
            out: out.into(),
            kind,
            size: Size::Small,
            runs: None,
            run_seconds: None,
            clips_per_genre: None,
            clips_per_run: None,
            track_seconds: None,
            library_per_genre: None,
            images: None,
            seed: 0,
            layout: OutputLayout::Nsd,
            subject: "subj01".into(),
            image_size: 64,
            sessions: None,
            volume: None,
            progress: false,
            subjects: None,
            individual_share: None,
            shared_images: None,
            generator: Generator::Fields,
            ncsnr: None,
        }
    }
}

/// What a simulation wrote.
pub enum Summary {
    /// An NSD-style image subject (or group).
    Image(Simulated),
    /// A movie subject.
    Movie(SimulatedMovie),
    /// A music subject.
    Music(SimulatedMusic),
    /// A video subject.
    Video(SimulatedVideo),
    /// An event-related experiment.
    Events {
        /// The dataset root.
        out: PathBuf,
        /// Its `truth/events_truth.json`.
        truth: EventsTruth,
    },
    /// EEG subjects.
    Eeg(SimulatedEeg),
}

fn usage(message: impl Into<String>) -> DataError {
    DataError::Usage(message.into())
}

fn parse_volume(volume: &[usize]) -> Result<[usize; 3]> {
    match volume[..] {
        [x, y, z] => Ok([x, y, z]),
        _ => Err(usage(format!(
            "--volume: expected X,Y,Z (three sizes), found {} values",
            volume.len()
        ))),
    }
}

/// `1`, `subject1` or the default `subj01`.
fn video_subject(text: &str) -> Result<usize> {
    let digits = text
        .trim()
        .trim_start_matches("subject")
        .trim_start_matches("subj");
    digits
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=99).contains(n))
        .ok_or_else(|| {
            usage(format!(
                "--subject: expected a subject number such as 1 (subject1), found '{text}'"
            ))
        })
}

/// Checks `request`, runs the simulator of its kind and returns what it wrote.
pub fn run(r: &Request) -> Result<Summary> {
    if r.kind != Kind::Image && r.generator != Generator::Fields {
        return Err(usage("--generator applies to --kind image"));
    }
    if r.ncsnr.is_some() && r.generator != Generator::Population {
        return Err(usage("--ncsnr applies to --generator population"));
    }
    if r.kind == Kind::Eeg {
        return run_eeg(r);
    }
    if r.kind != Kind::Image
        && (r.subjects.is_some() || r.individual_share.is_some() || r.shared_images.is_some())
    {
        return Err(usage(
            "--subjects, --individual-share and --shared-images apply to --kind image (and \
             --subjects, --individual-share to --kind eeg)",
        ));
    }
    if r.kind != Kind::Music
        && (r.clips_per_genre.is_some()
            || r.clips_per_run.is_some()
            || r.track_seconds.is_some()
            || r.library_per_genre.is_some())
    {
        return Err(usage(
            "--clips-per-genre, --clips-per-run, --track-seconds and --library-per-genre apply to --kind music",
        ));
    }
    match r.kind {
        Kind::Music => return run_music(r),
        Kind::Video => return run_video(r),
        _ => {}
    }
    if r.size == Size::Paper {
        return Err(usage("--size paper applies to --kind music and video"));
    }
    match r.kind {
        Kind::Events => return run_events(r),
        Kind::Movie => {
            if r.size != Size::Small || r.volume.is_some() {
                return Err(usage("--size and --volume apply to --kind image"));
            }
            return run_movie(r);
        }
        _ => {}
    }
    if r.runs.is_some() || r.run_seconds.is_some() {
        return Err(usage("--runs and --run-seconds apply to --kind movie"));
    }
    let mut opts = SimulateOptions::new(&r.out);
    let population = r.generator == Generator::Population;
    if population {
        opts.generator = Generator::Population;
        opts.sessions = population::DEFAULT_SESSIONS;
        opts.subjects = population::DEFAULT_SUBJECTS;
    }
    if r.size == Size::Nsd {
        opts.n_images = NSD_IMAGES;
        opts.sessions = NSD_SESSIONS;
        opts.volume_shape = NSD_VOLUME;
    }
    opts.sessions = r.sessions.unwrap_or(opts.sessions);
    // The population generator keeps NSD's session: 750 trials, a third of them new images.
    let default_images = if population {
        opts.sessions * SESSION_TRIALS / 3
    } else {
        opts.n_images
    };
    opts.n_images = r.images.unwrap_or(default_images);
    if let Some(ncsnr) = &r.ncsnr {
        opts.ncsnr = match ncsnr[..] {
            [value] => [value, value],
            [low, high] => [low, high],
            _ => {
                return Err(usage(format!(
                    "--ncsnr: expected LOW or LOW,HIGH, found {} values",
                    ncsnr.len()
                )))
            }
        };
    }
    if let Some(volume) = &r.volume {
        opts.volume_shape = parse_volume(volume)?;
    }
    opts.seed = r.seed;
    opts.layout = r.layout;
    opts.subject = brainrecon_datasets::nsd::parse_subject(&r.subject)?;
    opts.image_size = r.image_size;
    opts.progress = r.progress;
    opts.subjects = r.subjects.unwrap_or(opts.subjects);
    opts.individual_share = r.individual_share.unwrap_or(opts.individual_share);
    opts.shared_images = r.shared_images;
    Ok(Summary::Image(simulate(&opts)?))
}

/// 3 subjects, 96 training concepts × 3 images × 4 repetitions and 32 test concepts × 20
/// repetitions; `subjects` and `individual_share` change it.
fn run_eeg(r: &Request) -> Result<Summary> {
    let foreign = [
        ("--runs", r.runs.is_some()),
        ("--run-seconds", r.run_seconds.is_some()),
        ("--images", r.images.is_some()),
        ("--sessions", r.sessions.is_some()),
        ("--volume", r.volume.is_some()),
        ("--shared-images", r.shared_images.is_some()),
        (
            "--clips-per-genre, --clips-per-run, --track-seconds, --library-per-genre",
            r.clips_per_genre.is_some()
                || r.clips_per_run.is_some()
                || r.track_seconds.is_some()
                || r.library_per_genre.is_some(),
        ),
        ("--size (eeg: small only)", r.size != Size::Small),
    ];
    if let Some((flag, _)) = foreign.iter().find(|(_, given)| *given) {
        return Err(usage(format!("{flag} does not apply to --kind eeg")));
    }
    let mut opts = EegOptions::new(&r.out);
    opts.seed = r.seed;
    opts.subjects = r.subjects.unwrap_or(opts.subjects);
    opts.individual_share = r.individual_share.unwrap_or(opts.individual_share);
    opts.image_size = r.image_size;
    opts.progress = r.progress;
    Ok(Summary::Eeg(simulate_eeg(&opts)?))
}

fn run_movie(r: &Request) -> Result<Summary> {
    let mut opts = MovieOptions::new(&r.out);
    opts.runs = r.runs.unwrap_or(opts.runs);
    opts.run_seconds = r.run_seconds.unwrap_or(opts.run_seconds);
    opts.seed = r.seed;
    Ok(Summary::Movie(simulate_movie(&opts)?))
}

/// 7 runs at TR 2 s of 60 trials (3-s images every 4 s), training images shown twice and test
/// images three times; `runs`, `images` (training + test, one in six a test image) and
/// `volume` change it.
fn run_events(r: &Request) -> Result<Summary> {
    if r.size != Size::Small || r.sessions.is_some() || r.run_seconds.is_some() {
        return Err(usage(
            "--size, --sessions and --run-seconds do not apply to --kind events",
        ));
    }
    let mut opts = EventsOptions::new(&r.out);
    opts.seed = r.seed;
    opts.runs = r.runs.unwrap_or(opts.runs);
    opts.image_size = r.image_size;
    if let Some(images) = r.images {
        opts.test_images = (images / 6).max(2);
        opts.train_images = images.saturating_sub(opts.test_images);
    }
    if let Some(volume) = &r.volume {
        opts.volume_shape = parse_volume(volume)?;
    }
    let truth = simulate_events(&opts)?;
    Ok(Summary::Events {
        out: r.out.clone(),
        truth,
    })
}

fn run_music(r: &Request) -> Result<Summary> {
    if r.runs.is_some() || r.run_seconds.is_some() {
        return Err(usage("--runs and --run-seconds apply to --kind movie"));
    }
    if r.images.is_some() || r.sessions.is_some() {
        return Err(usage("--images and --sessions apply to --kind image"));
    }
    let mut opts = match r.size {
        Size::Small => MusicOptions::new(&r.out),
        Size::Paper => MusicOptions::paper(&r.out),
        Size::Nsd => {
            return Err(usage(
                "--size nsd applies to --kind image (music: small or paper)",
            ))
        }
    };
    opts.clips_per_genre = r.clips_per_genre.unwrap_or(opts.clips_per_genre);
    opts.clips_per_run = r.clips_per_run.unwrap_or(opts.clips_per_run);
    opts.track_seconds = r.track_seconds.unwrap_or(opts.track_seconds);
    opts.library_per_genre = r.library_per_genre.unwrap_or(opts.library_per_genre);
    if let Some(volume) = &r.volume {
        opts.volume_shape = parse_volume(volume)?;
    }
    opts.seed = r.seed;
    Ok(Summary::Music(simulate_music(&opts)?))
}

fn run_video(r: &Request) -> Result<Summary> {
    if r.runs.is_some() || r.run_seconds.is_some() {
        return Err(usage("--runs and --run-seconds apply to --kind movie"));
    }
    if r.images.is_some() || r.sessions.is_some() || r.volume.is_some() {
        return Err(usage(
            "--images, --sessions and --volume apply to --kind image",
        ));
    }
    let mut opts = match r.size {
        Size::Small => VideoOptions::new(&r.out),
        Size::Paper => VideoOptions::paper(&r.out),
        Size::Nsd => {
            return Err(usage(
                "--size nsd applies to --kind image (video: small or paper)",
            ))
        }
    };
    opts.seed = r.seed;
    opts.subject = video_subject(&r.subject)?;
    opts.frame_size = r.image_size;
    opts.progress = r.progress;
    Ok(Summary::Video(simulate_video(&opts)?))
}

/// `truth` as JSON with `out` added.
fn with_out(truth: &impl serde::Serialize, out: &Path) -> serde_json::Result<serde_json::Value> {
    let mut summary = serde_json::to_value(truth)?;
    summary["out"] = serde_json::json!(out);
    Ok(summary)
}

impl Summary {
    /// The truth's summary as JSON, with `out` (the image kind's scenes left out).
    pub fn json(&self) -> serde_json::Result<serde_json::Value> {
        match self {
            Summary::Image(Simulated {
                out,
                population: Some(population),
                ..
            }) => {
                let mut summary = serde_json::to_value(population)?;
                summary.as_object_mut().map(|o| o.remove("profiles"));
                for subject in summary["subjects"].as_array_mut().into_iter().flatten() {
                    subject.as_object_mut().map(|o| o.remove("own_ids"));
                }
                summary["out"] = serde_json::json!(out);
                Ok(summary)
            }
            Summary::Image(s) => match &s.group {
                None => {
                    let mut summary = serde_json::to_value(&s.truth)?;
                    summary.as_object_mut().map(|o| o.remove("scenes"));
                    summary["out"] = serde_json::json!(s.out);
                    Ok(summary)
                }
                Some(group) => {
                    let mut summary = serde_json::to_value(group)?;
                    if let Some(o) = summary.as_object_mut() {
                        for field in [
                            "semantic_centres",
                            "semantic_weights",
                            "retinotopic_centres",
                            "retinotopic_values",
                        ] {
                            o.remove(field);
                        }
                    }
                    for subject in summary["subjects"].as_array_mut().into_iter().flatten() {
                        subject.as_object_mut().map(|o| o.remove("own_ids"));
                    }
                    summary["out"] = serde_json::json!(s.out);
                    Ok(summary)
                }
            },
            Summary::Movie(s) => with_out(&s.truth, &s.out),
            Summary::Music(s) => with_out(&s.truth, &s.out),
            Summary::Video(s) => with_out(&s.truth, &s.out),
            Summary::Events { out, truth } => with_out(truth, out),
            Summary::Eeg(s) => {
                let mut summary = serde_json::to_value(&s.truth)?;
                if let Some(o) = summary.as_object_mut() {
                    o.remove("training");
                    o.remove("test");
                }
                summary["n_training_images"] = serde_json::json!(s.truth.training.len());
                summary["n_test_images"] = serde_json::json!(s.truth.test.len());
                summary["out"] = serde_json::json!(s.out);
                Ok(summary)
            }
        }
    }

    /// One line for people.
    pub fn text(&self) -> String {
        match self {
            Summary::Image(Simulated {
                out,
                population: Some(p),
                ..
            }) => {
                let mut text = format!(
                    "simulated a group of {} subjects from a population of {} functional profiles at {}: \
                     {} images each ({} shared), {} sessions of {} trials, individual share {}",
                    p.n_subjects,
                    p.profiles.len(),
                    out.display(),
                    p.n_images,
                    p.shared_ids.len(),
                    p.sessions,
                    p.trials_per_session,
                    p.individual_share
                );
                for s in &p.subjects {
                    text.push_str(&format!(
                        "\n  {}: volume {}×{}×{}, {} nsdgeneral voxels, {} train trials, {} test trials, ncsnr {:.3}",
                        s.subject,
                        s.volume_shape[0],
                        s.volume_shape[1],
                        s.volume_shape[2],
                        s.rois.get("nsdgeneral").copied().unwrap_or(0),
                        s.n_train_trials,
                        s.n_test_trials,
                        s.ncsnr
                    ));
                }
                text
            }
            Summary::Image(Simulated {
                out,
                group: Some(g),
                ..
            }) => {
                let mut text = format!(
                    "simulated a group of {} subjects at {}: {} images each ({} shared), {} distinct, individual share {}",
                    g.n_subjects,
                    out.display(),
                    g.n_images,
                    g.shared_ids.len(),
                    g.n_pool,
                    g.individual_share
                );
                for s in &g.subjects {
                    text.push_str(&format!(
                        "\n  {}: volume {}×{}×{}, {} nsdgeneral voxels, {} train trials, {} test trials, SNR ×{:.2}",
                        s.subject,
                        s.volume_shape[0],
                        s.volume_shape[1],
                        s.volume_shape[2],
                        s.rois.get("nsdgeneral").copied().unwrap_or(0),
                        s.n_train_trials,
                        s.n_test_trials,
                        s.snr_factor
                    ));
                }
                text
            }
            Summary::Image(s) => {
                let t = &s.truth;
                format!(
                    "simulated {} at {}: {} images, {} sessions, {} train trials, {} test images, {} nsdgeneral voxels",
                    t.subject,
                    s.out.display(),
                    t.n_images,
                    t.sessions.len(),
                    t.n_train_trials,
                    t.n_test_images,
                    t.rois.get("nsdgeneral").copied().unwrap_or(0)
                )
            }
            Summary::Movie(s) => {
                let t = &s.truth;
                format!(
                    "simulated {} watching a movie at {}: {} runs of {} s at TR {} s, {} brain voxels in {} groups",
                    t.subject,
                    s.out.display(),
                    t.runs,
                    t.run_seconds,
                    t.tr,
                    t.n_brain_voxels,
                    t.groups.len()
                )
            }
            Summary::Music(s) => {
                let t = &s.truth;
                format!(
                    "simulated {} hearing music at {}: {} training clips, {} test clips × {}, {} runs at TR {} s, {} brain voxels ({} acoustic, {} semantic)",
                    t.subject,
                    s.out.display(),
                    t.n_train_clips,
                    t.n_test_clips,
                    t.test_repeats,
                    t.runs.len(),
                    t.tr,
                    t.n_brain_voxels,
                    t.group_voxels[0],
                    t.group_voxels[1]
                )
            }
            Summary::Video(s) => {
                let (t, d) = (&s.truth, &s.truth.design);
                format!(
                    "simulated {} watching moving shapes at {}: {} training segments × {}, {} test segments × {}, {} TRs of {} s, {} frames per TR ({} px), {} grayordinates ({} cortical)",
                    t.subject,
                    s.out.display(),
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
                )
            }
            Summary::Eeg(s) => {
                let t = &s.truth;
                format!(
                    "simulated {} subjects seeing images with EEG at {} (THINGS-EEG2's layout): {} training images × {}, {} test images × {} (concepts disjoint), {} channels × {} samples at {} Hz",
                    t.subjects.len(),
                    s.out.display(),
                    t.training.len(),
                    t.train_repetitions,
                    t.test.len(),
                    t.test_repetitions,
                    t.channels.len(),
                    t.times,
                    t.sfreq
                )
            }
            Summary::Events { out, truth } => format!(
                "simulated an event-related experiment at {}: {} runs of {} volumes at TR {} s, {} trials of {} images ({} test), {} brain voxels ({} visual); fMRIPrep's derivatives in derivatives/fmriprep",
                out.display(),
                truth.runs,
                truth.n_volumes,
                truth.tr,
                truth.trials.len(),
                truth.images.len(),
                truth.images.len() - truth.n_train_images,
                truth.brain_voxels,
                truth.visual_voxels
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: Kind) -> Request {
        Request::new("never-written", kind)
    }

    #[test]
    fn parts_of_another_kind_are_refused_naming_the_flag_before_anything_is_written() {
        let refused = |r: Request, message: &str| {
            match run(&r).err() {
                Some(DataError::Usage(text)) => assert_eq!(text, message),
                other => panic!("{other:?}"),
            }
            assert!(!r.out.exists());
        };
        refused(
            Request {
                clips_per_run: Some(4),
                ..request(Kind::Movie)
            },
            "--clips-per-genre, --clips-per-run, --track-seconds and --library-per-genre apply to --kind music",
        );
        refused(
            Request {
                size: Size::Nsd,
                ..request(Kind::Events)
            },
            "--size, --sessions and --run-seconds do not apply to --kind events",
        );
        refused(
            Request {
                size: Size::Nsd,
                ..request(Kind::Music)
            },
            "--size nsd applies to --kind image (music: small or paper)",
        );
        refused(
            Request {
                subject: "zz".into(),
                ..request(Kind::Video)
            },
            "--subject: expected a subject number such as 1 (subject1), found 'zz'",
        );
        refused(
            Request {
                volume: Some(vec![1, 2]),
                ..request(Kind::Image)
            },
            "--volume: expected X,Y,Z (three sizes), found 2 values",
        );
        refused(
            Request {
                size: Size::Paper,
                ..request(Kind::Image)
            },
            "--size paper applies to --kind music and video",
        );
        refused(
            Request {
                subjects: Some(3),
                ..request(Kind::Movie)
            },
            "--subjects, --individual-share and --shared-images apply to --kind image (and \
             --subjects, --individual-share to --kind eeg)",
        );
        refused(
            Request {
                shared_images: Some(3),
                ..request(Kind::Eeg)
            },
            "--shared-images does not apply to --kind eeg",
        );
        refused(
            Request {
                size: Size::Paper,
                ..request(Kind::Eeg)
            },
            "--size (eeg: small only) does not apply to --kind eeg",
        );
        refused(
            Request {
                subjects: Some(9),
                ..request(Kind::Image)
            },
            "--subjects: expected 1 to 8, found 9",
        );
        refused(
            Request {
                subjects: Some(0),
                ..request(Kind::Image)
            },
            "--subjects: expected 1 to 8, found 0",
        );
        refused(
            Request {
                subjects: Some(2),
                individual_share: Some(1.5),
                ..request(Kind::Image)
            },
            "--individual-share: expected 0 to 1, found 1.5",
        );
        refused(
            Request {
                images: Some(40),
                shared_images: Some(40),
                ..request(Kind::Image)
            },
            "--shared-images: expected 3 to 39 (fewer than --images 40), found 40",
        );
        refused(
            Request {
                shared_images: Some(2),
                ..request(Kind::Image)
            },
            "--shared-images: expected 3 to 299 (fewer than --images 300), found 2",
        );
        refused(
            Request {
                generator: Generator::Population,
                ..request(Kind::Movie)
            },
            "--generator applies to --kind image",
        );
        refused(
            Request {
                ncsnr: Some(vec![0.2]),
                ..request(Kind::Image)
            },
            "--ncsnr applies to --generator population",
        );
        refused(
            Request {
                generator: Generator::Population,
                ncsnr: Some(vec![0.1, 0.2, 0.3]),
                ..request(Kind::Image)
            },
            "--ncsnr: expected LOW or LOW,HIGH, found 3 values",
        );
        refused(
            Request {
                generator: Generator::Population,
                ncsnr: Some(vec![0.3, 0.1]),
                ..request(Kind::Image)
            },
            "--ncsnr: expected LOW[,HIGH] with 0 < LOW ≤ HIGH ≤ 5, found 0.3,0.1",
        );
    }
}
