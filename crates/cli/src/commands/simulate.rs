use crate::commands::prelude::*;
use brainrecon_simulate::request::{self, Request};

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
    #[command(flatten)]
    request: Request,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let summary = request::run(&Request {
        progress: super::show_progress(),
        ..args.request
    })?;
    args.json.print(&summary.json()?, |_| summary.text())
}
