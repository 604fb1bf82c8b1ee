use crate::commands::prelude::*;
use brainrecon_simulate::request::{self, Request};
use brainrecon_simulate::OutputLayout;

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
    /// Images seen in rapid serial presentation with EEG, in THINGS-EEG2's layout
    Eeg,
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

/// The image simulator's generative model (--kind image). The two are independent: they share
/// the scenes and NSD's layout, nothing of how voxels respond.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generator {
    /// Tuning read from smooth fields over brain position: early visual pRFs laid out
    /// retinotopically, higher visual tuning by region; a group's subjects share the fields at
    /// shifted positions (--individual-share mixes in their own)
    Fields,
    /// Voxels drawn from a population of functional profiles (pRFs over luminance, attribute
    /// tunings, mixtures), 1 − R population and R individual (R = --individual-share), placed in
    /// a random order in every subject; NSD's sessions of 750 trials; single-trial noise from a
    /// target ncsnr per subject (--ncsnr). Defaults: 5 subjects, 10 sessions, sessions × 250
    /// images, 300 shared
    Population,
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
/// --kind eeg: subjects seeing images of the project's scenes in rapid serial presentation,
/// recorded with THINGS-EEG2's 17 occipital and parietal channels (−0.2 to 0.79 s at 100 Hz),
/// in THINGS-EEG2's shipped layout: eeg_dataset/preprocessed_data/sub-XX/preprocessed_eeg_
/// {training,test}.npy (pickled dicts, as the data set ships them), image_set/image_metadata.npy
/// and image_set/{training,test}_images/<concept>/<file>.png. A concept is a scene without its
/// position; training and test concepts are disjoint. Event-related components carry the
/// position, colour, size, shape and background at their own latencies and topographies, over
/// 1/f noise with alpha; subjects differ in topography (--individual-share) and latency.
/// 3 subjects (--subjects), 96 training concepts × 3 images × 4 repetitions, 32 test concepts
/// × 20 repetitions.
///
/// --generator (--kind image) chooses between two independent generative models of the
/// voxels. `fields` (default): tuning is read from smooth fields over brain position, so a
/// voxel's place carries its tuning and a group's subjects share the fields. `population`: each
/// subject has its own grid, voxel count and ROI extents; its visual voxels take functional
/// profiles from a population (pRFs over luminance at random centres and sizes, attribute
/// tunings with random weights, mixtures), 70 % population and 30 % individual by default, in a
/// random order per subject, so only functional alignment carries anything across subjects.
/// Its sessions are NSD's 750 trials (--sessions, default 10; --images overrides the sessions ×
/// 250 images), with 300 shared images and noise from a target ncsnr per subject (--ncsnr,
/// NSD's definition: sd of the signal / sd of the noise across repeats, betas z-scored per
/// session). Truth: truth/population.json and truth/subjNN/.
///
/// The truth is written to `truth/` beside the data.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon simulate --out sim-nsd --images 300 --seed 1\n  brainrecon simulate --size nsd --out sim-nsd-full   (NSD's size: ~11 GB of betas)\n  brainrecon nsd prepare --nsd-root sim-nsd --subject subj01 --out subj01\n  \
    brainrecon simulate --subjects 5 --individual-share 0.3 --images 200 --sessions 10 --out sim-group\n  \
    brainrecon simulate --generator population --subjects 5 --sessions 10 --out sim-population   (NSD's 750-trial sessions)\n  \
    brainrecon simulate --kind movie --out sim-movie --runs 4 --run-seconds 300 --seed 1\n  \
    brainrecon simulate --kind eeg --out sim-eeg --subjects 3\n  brainrecon bids prepare --bids-root sim-movie --subject 01 --task movie --out runs-sub01"
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
    /// Simulate a group of N subjects (1 to 8; --kind image) in one NSD root (subj01 …
    /// subjNN; with --layout prepared OUT/subjNN/ each): every subject sees the shared images,
    /// its other images are its own; each has its own volume size, region bounds and SNR.
    /// Default 1 (the subject named by --subject)
    #[arg(long)]
    subjects: Option<usize>,
    /// Share of each tuning value's variance that is individual rather than shared by the
    /// group (0 to 1; with --subjects above 1; default 0.3)
    #[arg(long)]
    individual_share: Option<f64>,
    /// Images every subject sees, the test images (at least 3, fewer than --images; default
    /// a tenth of --images)
    #[arg(long)]
    shared_images: Option<usize>,
    /// The image simulator's generative model (--kind image; two independent models)
    #[arg(long, value_enum, default_value_t = Generator::Fields)]
    generator: Generator,
    /// Target single-trial ncsnr, LOW or LOW,HIGH: each subject's is drawn uniformly from the
    /// range (--generator population; default 0.1,0.3)
    #[arg(long, value_delimiter = ',')]
    ncsnr: Option<Vec<f64>>,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let summary = request::run(&Request {
        out: args.out,
        kind: match args.kind {
            Kind::Image => request::Kind::Image,
            Kind::Movie => request::Kind::Movie,
            Kind::Music => request::Kind::Music,
            Kind::Video => request::Kind::Video,
            Kind::Events => request::Kind::Events,
            Kind::Eeg => request::Kind::Eeg,
        },
        size: match args.size {
            Size::Small => request::Size::Small,
            Size::Nsd => request::Size::Nsd,
            Size::Paper => request::Size::Paper,
        },
        runs: args.runs,
        run_seconds: args.run_seconds,
        clips_per_genre: args.clips_per_genre,
        clips_per_run: args.clips_per_run,
        track_seconds: args.track_seconds,
        library_per_genre: args.library_per_genre,
        images: args.images,
        seed: args.seed,
        layout: match args.layout {
            Layout::Nsd => OutputLayout::Nsd,
            Layout::Prepared => OutputLayout::Prepared,
        },
        subject: args.subject,
        image_size: args.image_size,
        sessions: args.sessions,
        volume: args.volume,
        progress: super::show_progress(),
        subjects: args.subjects,
        individual_share: args.individual_share,
        shared_images: args.shared_images,
        generator: match args.generator {
            Generator::Fields => brainrecon_simulate::Generator::Fields,
            Generator::Population => brainrecon_simulate::Generator::Population,
        },
        ncsnr: args.ncsnr,
    })?;
    args.json.print(&summary.json()?, |_| summary.text())
}
