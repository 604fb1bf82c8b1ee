//! `simulate`: a synthetic subject with known truth, written in NSD's own layout or prepared.

#![warn(missing_docs)]

mod bold;
pub mod brain;
pub mod classify;
pub mod classify_clip;
pub mod eeg;
pub mod events;
pub mod group;
pub mod h5stream;
pub mod movie;
pub mod music;
pub mod population;
pub mod request;
pub mod scanner_export;
pub mod scene;
pub mod synth;
pub mod video;

use brain::{luminance_contrast, Brain, Responder, Tuning, NSDGENERAL, PRF_VISUALROIS, STREAMS};
use brainrecon_core::error::{DataError, Result};
use brainrecon_core::fs::{write_atomic, write_bytes_atomic, write_json_atomic, OutputDir};
use brainrecon_core::progress::bar_aligned;
use brainrecon_datasets::nsd::prepare::{prepare, PrepareOptions};
use brainrecon_datasets::nsd::{Layout, BETA_SCALE};
use brainrecon_formats::mat::{encode_doubles, Matrix};
use brainrecon_formats::{nifti_io, npy};
use h5stream::ChunkedWriter;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use scene::Scene;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How the image subject is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum OutputLayout {
    /// NSD's directory tree and file formats.
    #[cfg_attr(
        feature = "cli",
        value(help = "NSD's own directory tree and file formats (an NSD root for `nsd prepare`)")
    )]
    Nsd,
    /// A prepared subject (the NSD tree is written, prepared, and removed).
    #[cfg_attr(feature = "cli", value(help = "A prepared subject, ready for `fit`"))]
    Prepared,
}

/// What the image simulator (`simulate --kind image`) writes.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// The folder to create (an NSD root, or the prepared subject).
    pub out: PathBuf,
    /// Distinct images (73k ids `0..n_images`).
    pub n_images: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// NSD's tree or a prepared subject.
    pub layout: OutputLayout,
    /// 1-based subject number.
    pub subject: usize,
    /// Side of the square stimulus images, pixels.
    pub image_size: usize,
    /// Scan sessions.
    pub sessions: usize,
    /// (X, Y, Z)
    pub volume_shape: [usize; 3],
    /// Whether to draw progress bars.
    pub progress: bool,
    /// Subjects of a simulated group (1 to 8); 1 writes `subject` alone, as before groups.
    pub subjects: usize,
    /// R (0 to 1): the variance share of each group subject's individual tuning.
    pub individual_share: f64,
    /// Images every subject sees (the test images); `None`: n_images / 10, at least 3
    /// ([`Generator::Population`]: [`population::default_shared`]).
    pub shared_images: Option<usize>,
    /// Which generative model writes the subjects.
    pub generator: Generator,
    /// [`Generator::Population`]: the range [low, high] each subject's target single-trial
    /// ncsnr is drawn from (NSD's definition, see [`population`]); 0 < low ≤ high ≤ 5.
    pub ncsnr: [f64; 2],
}

/// The image simulator's generative model. The two are independent: they share the scenes and
/// NSD's layout, nothing of how voxels respond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Generator {
    /// Tuning read from smooth fields over brain position (early visual pRFs laid out
    /// retinotopically, semantic tuning by region), a group's subjects sharing the fields at
    /// shifted positions ([`brain`], [`group`]).
    #[default]
    #[cfg_attr(
        feature = "cli",
        value(
            help = "Tuning read from smooth fields over brain position: early visual pRFs laid out retinotopically, higher visual tuning by region; a group's subjects share the fields at shifted positions (--individual-share mixes in their own)"
        )
    )]
    Fields,
    /// Voxels drawn from a population of functional profiles (pRFs, attribute tunings,
    /// mixtures) in a random order per subject, NSD's 750-trial sessions and a target ncsnr
    /// per subject ([`population`]).
    #[cfg_attr(
        feature = "cli",
        value(
            help = "Voxels drawn from a population of functional profiles (pRFs over luminance, attribute tunings, mixtures), 1 − R population and R individual (R = --individual-share), placed in a random order in every subject; NSD's sessions of 750 trials; single-trial noise from a target ncsnr per subject (--ncsnr). Defaults: 5 subjects, 10 sessions, sessions × 250 images, 300 shared"
        )
    )]
    Population,
}

/// Images at NSD's size: its 37 released sessions of 750 trials show 9250 images 3 times each.
pub const NSD_IMAGES: usize = 9250;
/// Sessions at NSD's size (the released ones, 750 trials each).
pub const NSD_SESSIONS: usize = 37;
/// Voxels (X, Y, Z) of NSD's 1.8-mm functional grid.
pub const NSD_VOLUME: [usize; 3] = [81, 104, 83];

/// gzip level of the betas chunks (h5py's default for `compression="gzip"`).
pub const BETAS_DEFLATE_LEVEL: u32 = 4;

impl SimulateOptions {
    /// The small default: 300 images, 3 sessions, 64-px images, a 24 × 30 × 20 volume, one
    /// subject (`subj01`), NSD's layout, seed 0.
    pub fn new(out: &Path) -> Self {
        SimulateOptions {
            out: out.to_path_buf(),
            n_images: 300,
            seed: 0,
            layout: OutputLayout::Nsd,
            subject: 1,
            image_size: 64,
            sessions: 3,
            volume_shape: [24, 30, 20],
            progress: false,
            subjects: 1,
            individual_share: 0.3,
            shared_images: None,
            generator: Generator::Fields,
            ncsnr: population::DEFAULT_NCSNR,
        }
    }
}

/// What the simulator knows, saved as `truth/truth.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Truth {
    /// `subjNN`.
    pub subject: String,
    /// The seed it was made with.
    pub seed: u64,
    /// Distinct images.
    pub n_images: usize,
    /// The sessions written (1-based).
    pub sessions: Vec<usize>,
    /// Trials in each session, in `sessions` order.
    pub trials_per_session: Vec<usize>,
    /// 0-based ids of the shared images (all of them are seen).
    pub shared_ids: Vec<usize>,
    /// Trials of training (non-shared) images.
    pub n_train_trials: usize,
    /// Distinct training images shown.
    pub n_train_images: usize,
    /// Shared (test) images.
    pub n_test_images: usize,
    /// Trials of shared images.
    pub n_test_trials: usize,
    /// (X, Y, Z)
    pub volume_shape: [usize; 3],
    /// Stimulus image size [h, w], pixels.
    pub image_size: [usize; 2],
    /// Stored int16 betas = percent signal change × this ([`BETA_SCALE`], 300).
    pub beta_scale: f32,
    /// Voxels per atlas and per `atlas/label`.
    pub rois: BTreeMap<String, usize>,
    /// The scene shown as each 73k id.
    pub scenes: Vec<Scene>,
}

/// Files in `truth/` beside the data.
pub const TRUTH_FILES: &str = "truth.json; trial_stimulus.npy (trials,) int64; trial_session.npy (trials,) int64; \
betas_psc.npy (trials, nsdgeneral voxels) float32 = stored int16 / 300; signal.npy (images, nsdgeneral voxels) float32; \
voxel_coords.npy (nsdgeneral voxels, 3) int32 (x, y, z)";

/// What [`simulate`] wrote.
pub struct Simulated {
    /// The folder written.
    pub out: PathBuf,
    /// The subject's truth; of a group, the first subject's.
    pub truth: Truth,
    /// A group's truth (`subjects` > 1, [`Generator::Fields`]).
    pub group: Option<group::GroupTruth>,
    /// The population simulator's truth ([`Generator::Population`]).
    pub population: Option<Box<population::PopulationTruth>>,
}

/// A new output folder for a simulator: refused unless `out` is new or empty; written in its
/// `<out>.partial` staging folder and moved into place by [`OutputDir::run`].
pub(crate) fn new_output_dir(out: &Path) -> Result<OutputDir> {
    OutputDir::create_empty(out, ["a new or empty directory", "a non-empty directory"])
}

/// Writes a synthetic subject. With [`OutputLayout::Nsd`] `out` becomes an NSD root.
pub fn simulate(opts: &SimulateOptions) -> Result<Simulated> {
    if opts.n_images < 10 {
        return Err(DataError::Usage(format!(
            "--images: expected at least 10, found {}",
            opts.n_images
        )));
    }
    if opts.sessions == 0 || opts.sessions > 40 {
        return Err(DataError::Usage(format!(
            "--sessions: expected 1 to 40, found {}",
            opts.sessions
        )));
    }
    if !(16..=1024).contains(&opts.image_size) {
        return Err(DataError::Usage(format!(
            "--image-size: expected 16 to 1024, found {}",
            opts.image_size
        )));
    }
    if opts.volume_shape.iter().any(|d| !(8..=512).contains(d)) {
        return Err(DataError::Usage(format!(
            "--volume: expected three sizes from 8 to 512, found {:?}",
            opts.volume_shape
        )));
    }
    if !(1..=8).contains(&opts.subjects) {
        return Err(DataError::Usage(format!(
            "--subjects: expected 1 to 8, found {}",
            opts.subjects
        )));
    }
    if !(0.0..=1.0).contains(&opts.individual_share) {
        return Err(DataError::Usage(format!(
            "--individual-share: expected 0 to 1, found {}",
            opts.individual_share
        )));
    }
    if let Some(m) = opts.shared_images {
        if m < 3 || m >= opts.n_images {
            return Err(DataError::Usage(format!(
                "--shared-images: expected 3 to {} (fewer than --images {}), found {m}",
                opts.n_images - 1,
                opts.n_images
            )));
        }
    }
    let [low, high] = opts.ncsnr;
    if !(low > 0.0 && low <= high && high <= 5.0) {
        return Err(DataError::Usage(format!(
            "--ncsnr: expected LOW[,HIGH] with 0 < LOW ≤ HIGH ≤ 5, found {low},{high}"
        )));
    }
    if opts.generator == Generator::Population {
        return population::simulate_population(opts);
    }
    if opts.subjects > 1 {
        return group::simulate_group(opts);
    }
    match opts.layout {
        OutputLayout::Nsd => {
            let truth = new_output_dir(&opts.out)?.run(|staging| write_nsd_tree(opts, staging))?;
            Ok(Simulated {
                out: opts.out.clone(),
                truth,
                group: None,
                population: None,
            })
        }
        OutputLayout::Prepared => {
            // The NSD tree is a scratch input of `prepare`: staged, read, then removed.
            let scratch = new_output_dir(&opts.out.with_extension("nsd-source"))?;
            let source = scratch.path().to_path_buf();
            let result = (|| {
                let truth = write_nsd_tree(opts, &source)?;
                prepare(&PrepareOptions {
                    progress: opts.progress,
                    ..PrepareOptions::defaults(&source, opts.subject, &opts.out)
                })?;
                let truth_dir = opts.out.join("truth");
                std::fs::rename(source.join("truth"), &truth_dir)
                    .map_err(|e| DataError::io(&truth_dir, e))?;
                Ok(truth)
            })();
            scratch.abort();
            Ok(Simulated {
                out: opts.out.clone(),
                truth: result?,
                group: None,
                population: None,
            })
        }
    }
}

pub(crate) struct Design {
    shared: Vec<usize>,
    /// 8 subjects × n_images, 0-based ids; shared images first.
    subject_images: Vec<Vec<usize>>,
    /// trial → column of subject_images.
    master_ordering: Vec<usize>,
}

impl Design {
    /// NSD's experiment-design `.mat` (`nsd_expdesign.mat`): `masterordering` (1, trials),
    /// `sharedix` (1, shared) and `subjectim` (8, `n_images`), all 1-based as NSD writes them.
    pub(crate) fn write_expdesign(&self, layout: &Layout, n_images: usize) -> Result<()> {
        let to_row = |values: Vec<f64>| Matrix {
            rows: 1,
            cols: values.len(),
            values,
        };
        let sharedix = to_row(self.shared.iter().map(|&i| (i + 1) as f64).collect());
        let masterordering = to_row(
            self.master_ordering
                .iter()
                .map(|&c| (c + 1) as f64)
                .collect(),
        );
        let mut subjectim = Matrix {
            rows: 8,
            cols: n_images,
            values: vec![0.0; 8 * n_images],
        };
        // Column-major, as MATLAB stores it.
        for (s, row) in self.subject_images.iter().enumerate() {
            for (c, &id) in row.iter().enumerate() {
                subjectim.values[s + 8 * c] = (id + 1) as f64;
            }
        }
        write_bytes_atomic(
            &layout.expdesign(),
            &encode_doubles(&[
                ("masterordering", &masterordering),
                ("sharedix", &sharedix),
                ("subjectim", &subjectim),
            ]),
        )
    }
}

/// Images every subject sees when `--shared-images` is not given.
pub(crate) fn default_shared(n_images: usize) -> usize {
    (n_images / 10).max(3)
}

fn make_design(n_images: usize, n_shared: usize, rng: &mut impl Rng) -> Design {
    let mut pool: Vec<usize> = (0..n_images).collect();
    pool.shuffle(rng);
    let shared: Vec<usize> = pool[..n_shared].to_vec();
    let subject_images = (0..8)
        .map(|_| {
            let mut rest = pool[n_shared..].to_vec();
            rest.shuffle(rng);
            shared.iter().copied().chain(rest).collect()
        })
        .collect();
    let mut master_ordering: Vec<usize> = (0..3).flat_map(|_| 0..n_images).collect();
    master_ordering.shuffle(rng);
    Design {
        shared,
        subject_images,
        master_ordering,
    }
}

fn write_nsd_tree(opts: &SimulateOptions, root: &Path) -> Result<Truth> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let layout = Layout::new(root, opts.subject);
    let brain = Brain::new(opts.volume_shape, &mut rng);
    let scenes: Vec<Scene> = (0..opts.n_images)
        .map(|_| Scene::random(&mut rng))
        .collect();
    let captions: Vec<Vec<String>> = scenes.iter().map(|s| s.captions(&mut rng)).collect();
    let n_shared = opts
        .shared_images
        .unwrap_or_else(|| default_shared(opts.n_images));
    let design = make_design(opts.n_images, n_shared, &mut rng);
    let n_trials = design.master_ordering.len();
    let trial_ids: Vec<usize> = design
        .master_ordering
        .iter()
        .map(|&c| design.subject_images[opts.subject - 1][c])
        .collect();
    let per_session = n_trials.div_ceil(opts.sessions);
    let sessions: Vec<usize> = (1..=n_trials.div_ceil(per_session)).collect();
    let trial_session: Vec<usize> = (0..n_trials).map(|t| t / per_session + 1).collect();

    // Noise-free responses, normalised per voxel over images.
    let grid = 24;
    let images: Vec<_> = scenes.iter().map(|s| s.render(opts.image_size)).collect();
    let maps: Vec<_> = images
        .iter()
        .map(|im| luminance_contrast(im, grid))
        .collect();
    let visual: Vec<usize> = (0..brain.voxels.len())
        .filter(|&v| brain.nsdgeneral[brain.index(brain.voxels[v].coord)] > 0)
        .collect();
    let signal = Signal::new(&brain, &visual, &scenes, &maps, grid);
    let truth_dir = root.join("truth");
    write_betas(
        opts,
        &layout,
        &brain,
        &signal,
        &visual,
        &trial_ids,
        &trial_session,
        &sessions,
        &truth_dir,
        &mut rng,
    )?;

    // Experimental design and behaviour.
    design.write_expdesign(&layout, opts.n_images)?;
    write_responses(&layout, &trial_ids, &trial_session, per_session)?;
    write_stim_info(&layout, &design, opts.subject, &trial_ids)?;
    write_captions(&layout, &captions)?;

    let rois = write_rois(&layout, &brain)?;
    write_brick(&layout, &images, opts.image_size)?;
    let truth = subject_truth(
        opts,
        &layout,
        &design.shared,
        &trial_ids,
        &trial_session,
        &sessions,
        rois,
        &scenes,
    );
    write_json_atomic(&truth_dir.join("truth.json"), &truth)?;
    write_truth_arrays(
        &truth_dir,
        &trial_ids,
        &trial_session,
        &signal,
        &visual,
        &brain,
        opts.n_images,
    )?;
    Ok(truth)
}

/// ROI masks and their colour tables; returns the voxels per atlas and per `atlas/label`.
pub(crate) fn write_rois(layout: &Layout, brain: &Brain) -> Result<BTreeMap<String, usize>> {
    let mut rois = BTreeMap::new();
    for (atlas, values, labels) in [
        ("nsdgeneral", &brain.nsdgeneral, &NSDGENERAL[..]),
        ("streams", &brain.streams, &STREAMS[..]),
        ("prf-visualrois", &brain.prf_visualrois, &PRF_VISUALROIS[..]),
    ] {
        nifti_io::write_i16(&layout.roi_mask(atlas), brain.shape, &brain.affine, values)?;
        let mut table = String::from("0 Unknown\n");
        for (value, name) in labels {
            table.push_str(&format!("{value} {name}\n"));
            let count = values.iter().filter(|&&v| v as i32 == *value).count();
            if count > 0 {
                rois.insert(format!("{atlas}/{name}"), count);
            }
        }
        write_atomic(&layout.color_table(atlas), |w| {
            w.write_all(table.as_bytes())
        })?;
        rois.insert(atlas.to_string(), values.iter().filter(|&&v| v > 0).count());
    }
    Ok(rois)
}

/// Stimuli, chunked one image per chunk as NSD's brick is.
pub(crate) fn write_brick(
    layout: &Layout,
    images: &[brainrecon_formats::image::RgbImage],
    size: usize,
) -> Result<()> {
    let mut brick = ChunkedWriter::<u8>::create(
        &layout.stimuli(),
        "imgBrick",
        &[images.len(), size, size, 3],
        1,
        None,
    )?;
    for image in images {
        brick.write_rows(&image.pixels)?;
    }
    brick.finish()
}

/// A subject's `truth.json` contents.
#[allow(clippy::too_many_arguments)]
pub(crate) fn subject_truth(
    opts: &SimulateOptions,
    layout: &Layout,
    shared_ids: &[usize],
    trial_ids: &[usize],
    trial_session: &[usize],
    sessions: &[usize],
    rois: BTreeMap<String, usize>,
    scenes: &[Scene],
) -> Truth {
    let n_trials = trial_ids.len();
    let shared: std::collections::BTreeSet<usize> = shared_ids.iter().copied().collect();
    let n_test_trials = trial_ids.iter().filter(|id| shared.contains(id)).count();
    let n_train_images = trial_ids
        .iter()
        .filter(|id| !shared.contains(id))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    Truth {
        subject: layout.subject_name(),
        seed: opts.seed,
        n_images: opts.n_images,
        sessions: sessions.to_vec(),
        trials_per_session: sessions
            .iter()
            .map(|&s| trial_session.iter().filter(|&&x| x == s).count())
            .collect(),
        shared_ids: shared.iter().copied().collect(),
        n_train_trials: n_trials - n_test_trials,
        n_train_images,
        n_test_images: shared.len(),
        n_test_trials,
        volume_shape: opts.volume_shape,
        image_size: [opts.image_size, opts.image_size],
        beta_scale: BETA_SCALE,
        rois,
        scenes: scenes.to_vec(),
    }
}

/// `trial_stimulus.npy`, `trial_session.npy`, `signal.npy` (the first `n_images` ids) and
/// `voxel_coords.npy`.
pub(crate) fn write_truth_arrays(
    truth_dir: &Path,
    trial_ids: &[usize],
    trial_session: &[usize],
    signal: &Signal,
    visual: &[usize],
    brain: &Brain,
    n_images: usize,
) -> Result<()> {
    let n_trials = trial_ids.len();
    let as_i64 = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
    npy::write(
        &truth_dir.join("trial_stimulus.npy"),
        &[n_trials],
        &as_i64(trial_ids),
    )?;
    npy::write(
        &truth_dir.join("trial_session.npy"),
        &[n_trials],
        &as_i64(trial_session),
    )?;
    let mut signal_writer =
        npy::Writer::<f32>::create(&truth_dir.join("signal.npy"), &[n_images, visual.len()])?;
    let mut row = Vec::with_capacity(visual.len());
    for image in 0..n_images {
        row.clear();
        row.extend((0..visual.len()).map(|k| signal.value(image, k)));
        signal_writer.write(&row)?;
    }
    signal_writer.finish()?;
    let coords: Vec<i32> = visual
        .iter()
        .flat_map(|&v| brain.voxels[v].coord.map(|c| c as i32))
        .collect();
    npy::write(
        &truth_dir.join("voxel_coords.npy"),
        &[visual.len(), 3],
        &coords,
    )
}

/// Normalised noise-free signal of the visual voxels (mean 0, sd 1 over images). pRF voxels'
/// values are stored (images × pRF voxels), as they cost a 24 × 24 weighted sum each; semantic
/// voxels' are recomputed from the scene's attributes when asked, which keeps NSD's size in
/// memory. Both give the same bits as a stored (images × visual voxels) table would.
pub(crate) struct Signal<'a> {
    /// Per visual voxel (index into `visual`).
    kinds: Vec<VisualSignal<'a>>,
    /// (images, n_stored)
    stored: Vec<f32>,
    n_stored: usize,
    /// `Scene::one_hot` per image.
    one_hot: Vec<Vec<f32>>,
}

enum VisualSignal<'a> {
    Stored(usize),
    Semantic {
        responder: Responder<'a>,
        mean: f32,
        sd: f32,
    },
}

impl<'a> Signal<'a> {
    pub(crate) fn new(
        brain: &'a Brain,
        visual: &[usize],
        scenes: &[Scene],
        maps: &[(Vec<f32>, Vec<f32>)],
        grid: usize,
    ) -> Self {
        let one_hot: Vec<Vec<f32>> = scenes.iter().map(|s| s.one_hot()).collect();
        let n_images = scenes.len();
        let n_stored = visual
            .iter()
            .filter(|&&v| matches!(brain.voxels[v].tuning, Tuning::Receptive { .. }))
            .count();
        let mut stored = vec![0f32; n_images * n_stored];
        let mut kinds = Vec::with_capacity(visual.len());
        let mut n_columns = 0;
        for &v in visual {
            let responder = Responder::new(&brain.voxels[v], grid);
            let raw: Vec<f32> = (0..n_images)
                .map(|i| responder.respond(&one_hot[i], &maps[i].0, &maps[i].1))
                .collect();
            let mean = raw.iter().sum::<f32>() / raw.len() as f32;
            let sd = (raw.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / raw.len() as f32)
                .sqrt()
                .max(1e-6);
            if let Responder::Receptive { .. } = responder {
                let column = n_columns;
                n_columns += 1;
                for (i, r) in raw.iter().enumerate() {
                    stored[i * n_stored + column] = (r - mean) / sd;
                }
                kinds.push(VisualSignal::Stored(column));
            } else {
                kinds.push(VisualSignal::Semantic {
                    responder,
                    mean,
                    sd,
                });
            }
        }
        Signal {
            kinds,
            stored,
            n_stored,
            one_hot,
        }
    }

    /// Signal of visual voxel `k` for `image`.
    pub(crate) fn value(&self, image: usize, k: usize) -> f32 {
        match &self.kinds[k] {
            VisualSignal::Stored(column) => self.stored[image * self.n_stored + column],
            VisualSignal::Semantic {
                responder,
                mean,
                sd,
            } => (responder.respond(&self.one_hot[image], &[], &[]) - mean) / sd,
        }
    }
}

/// Betas per session, streamed one trial (one chunk) at a time: session offset and gain, trial
/// noise at the voxel's SNR, int16 × 300. The stored values of the visual voxels also go to
/// `truth/betas_psc.npy`, row by row.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_betas(
    opts: &SimulateOptions,
    layout: &Layout,
    brain: &Brain,
    signal: &Signal,
    visual: &[usize],
    trial_ids: &[usize],
    trial_session: &[usize],
    sessions: &[usize],
    truth_dir: &Path,
    rng: &mut ChaCha8Rng,
) -> Result<()> {
    let normal = Normal::new(0.0f32, 1.0).unwrap();
    let [nx, ny, nz] = opts.volume_shape;
    let n_vox = brain.voxels.len();
    let flat = |v: usize| {
        let [x, y, z] = brain.voxels[v].coord;
        (z * ny + y) * nx + x
    };
    let mut visual_of = vec![usize::MAX; n_vox];
    for (k, &v) in visual.iter().enumerate() {
        visual_of[v] = k;
    }
    let mut psc_writer = npy::Writer::<f32>::create(
        &truth_dir.join("betas_psc.npy"),
        &[trial_ids.len(), visual.len()],
    )?;
    let bar = bar_aligned(trial_ids.len() as u64, "betas trials", opts.progress, 14);
    // Voxels outside the brain stay 0 in every trial.
    let mut data = vec![0i16; nx * ny * nz];
    let mut psc_row = Vec::with_capacity(visual.len());
    for &session in sessions {
        let trials: Vec<usize> = (0..trial_ids.len())
            .filter(|&t| trial_session[t] == session)
            .collect();
        let offsets: Vec<f32> = (0..n_vox).map(|_| 0.8 * normal.sample(rng)).collect();
        let gains: Vec<f32> = (0..n_vox).map(|_| rng.gen_range(0.7..1.3)).collect();
        let mut writer = ChunkedWriter::<i16>::create(
            &layout.betas(session),
            "betas",
            &[trials.len(), nz, ny, nx],
            1,
            Some(BETAS_DEFLATE_LEVEL),
        )?;
        for &t in &trials {
            let image = trial_ids[t];
            for (v, voxel) in brain.voxels.iter().enumerate() {
                let psc = match voxel.tuning {
                    Tuning::None => offsets[v] + 1.2 * normal.sample(rng),
                    _ => {
                        let s = signal.value(image, visual_of[v]);
                        offsets[v]
                            + gains[v] * voxel.amplitude * (s + normal.sample(rng) / voxel.ncsnr)
                    }
                };
                data[flat(v)] = (psc * BETA_SCALE).round().clamp(-32768.0, 32767.0) as i16;
            }
            psc_row.clear();
            psc_row.extend(visual.iter().map(|&v| data[flat(v)] as f32 / BETA_SCALE));
            psc_writer.write(&psc_row)?;
            writer.write_rows(&data)?;
            bar.inc(1);
        }
        writer.finish()?;
    }
    bar.finish_and_clear();
    psc_writer.finish()
}

pub(crate) fn write_responses(
    layout: &Layout,
    trial_ids: &[usize],
    trial_session: &[usize],
    per_session: usize,
) -> Result<()> {
    const RUN_LENGTH: usize = 63;
    let mut text = String::from("SUBJECT\tSESSION\tRUN\tTRIAL\tTIME\tISOLD\tISCORRECT\tRT\tCHANGEMIND\tMEMORYRECENT\tMEMORYFIRST\tISOLDCURRENT\tISCORRECTCURRENT\tTOTAL1\tTOTAL2\tBUTTON\tMISSINGDATA\t73KID\n");
    let mut first_seen: BTreeMap<usize, usize> = BTreeMap::new();
    for (t, (&id, &session)) in trial_ids.iter().zip(trial_session).enumerate() {
        let within = t - (session - 1) * per_session;
        let (run, trial) = (within / RUN_LENGTH + 1, within % RUN_LENGTH + 1);
        let is_old = first_seen.contains_key(&id) as u8;
        let first = first_seen.entry(id).or_insert(t);
        let memory_first = if is_old == 1 {
            format!("{}", t - *first)
        } else {
            "n/a".into()
        };
        text.push_str(&format!(
            "{}\t{session}\t{run}\t{trial}\t{:.6}\t{is_old}\t1\t{:.1}\t0\t{memory_first}\t{memory_first}\t{is_old}\t1\t1\t0\t{}\t0\t{}\n",
            layout.subject,
            737000.0 + session as f64 + within as f64 * 4.0 / 86400.0,
            700.0 + (t % 17) as f64 * 13.0,
            1 + is_old,
            id + 1
        ));
    }
    write_atomic(&layout.responses(), |w| w.write_all(text.as_bytes()))
}

pub(crate) fn coco_id(id: usize) -> u64 {
    100_000 + 37 * id as u64
}

pub(crate) fn coco_split(id: usize) -> &'static str {
    if id % 5 == 0 {
        "val2017"
    } else {
        "train2017"
    }
}

fn write_stim_info(
    layout: &Layout,
    design: &Design,
    subject: usize,
    trial_ids: &[usize],
) -> Result<()> {
    let n_images = design.subject_images[0].len();
    let mut header =
        String::from(",cocoId,cocoSplit,cropBox,loss,nsdId,flagged,BOLD5000,shared1000");
    for s in 1..=8 {
        header.push_str(&format!(",subject{s}"));
    }
    for r in 0..3 {
        header.push_str(&format!(",subject{subject}_rep{r}"));
    }
    let mut text = header + "\n";
    let shared: std::collections::HashSet<usize> = design.shared.iter().copied().collect();
    for id in 0..n_images {
        let reps: Vec<usize> = trial_ids
            .iter()
            .enumerate()
            .filter(|(_, &x)| x == id)
            .map(|(t, _)| t + 1)
            .collect();
        text.push_str(&format!(
            "{id},{},{},\"(0, 0, 0.125, 0.125)\",0.0,{id},False,False,{}",
            coco_id(id),
            coco_split(id),
            if shared.contains(&id) {
                "True"
            } else {
                "False"
            }
        ));
        for _ in 1..=8 {
            text.push_str(",1");
        }
        for r in 0..3 {
            text.push_str(&format!(",{}", reps.get(r).copied().unwrap_or(0)));
        }
        text.push('\n');
    }
    write_atomic(&layout.stim_info(), |w| w.write_all(text.as_bytes()))
}

pub(crate) fn write_captions(layout: &Layout, captions: &[Vec<String>]) -> Result<()> {
    for split in ["train2017", "val2017"] {
        let ids: Vec<usize> = (0..captions.len())
            .filter(|&id| coco_split(id) == split)
            .collect();
        let images: Vec<_> = ids.iter().map(|&id| serde_json::json!({"id": coco_id(id), "file_name": format!("{:012}.jpg", coco_id(id))})).collect();
        let mut annotations = Vec::new();
        for &id in &ids {
            for (k, caption) in captions[id].iter().enumerate() {
                annotations.push(serde_json::json!({"image_id": coco_id(id), "id": coco_id(id) * 10 + k as u64, "caption": caption}));
            }
        }
        let document = serde_json::json!({"info": {"description": "brainrecon synthetic captions"}, "images": images, "annotations": annotations});
        write_json_atomic(&layout.captions(split), &document)?;
    }
    Ok(())
}
