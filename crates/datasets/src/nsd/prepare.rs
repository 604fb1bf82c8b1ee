//! `nsd prepare`: NSD's files → a prepared subject.
//!
//! Everything that can be checked cheaply is checked before anything is written. Work happens in
//! `<out>.partial/`; each session's z-scored betas land there atomically, so an interrupted run
//! resumes where it stopped, and the directory is renamed to `<out>` only when complete.

use super::{
    read_coco_captions, read_color_table, read_responses, read_stim_info, ExpDesign, H5Dataset,
    H5Kind, Layout, Response, BETA_SCALE,
};
use crate::error::{DataError, Result};
use crate::prepared::{AtlasMeta, LabelMeta, Split, SubjectMeta, Writer, FORMAT, FORMAT_VERSION};
use brainrecon_core::fs::{read_json, OutputDir, Refusals, Resume};
use brainrecon_core::progress::bar_aligned;
use brainrecon_formats::image::RgbImage;
use brainrecon_formats::nifti_io;
use brainrecon_formats::npy;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// How betas are normalised (`--zscore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZScore {
    /// Each voxel z-scored over the trials of each session (mean 0, population std 1).
    Session,
    /// Percent signal change as stored.
    None,
}

impl ZScore {
    /// `subject.json`'s name for it.
    pub fn name(self) -> &'static str {
        match self {
            ZScore::Session => "session",
            ZScore::None => "none",
        }
    }
}

/// What `nsd prepare` reads and writes (see [`PrepareOptions::defaults`]).
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// The NSD root (holding `nsddata/`, `nsddata_betas/`, `nsddata_stimuli/`).
    pub nsd_root: PathBuf,
    /// 1-based.
    pub subject: usize,
    /// The prepared subject's folder.
    pub out: PathBuf,
    /// 1-based; `None` means every session in responses.tsv.
    pub sessions: Option<Vec<usize>>,
    /// Atlases to write (NSD's ROI file names, e.g. `nsdgeneral`).
    pub atlases: Vec<String>,
    /// How betas are normalised.
    pub zscore: ZScore,
    /// Also write the train betas averaged over repeats (`--average-train`).
    pub average_train: bool,
    /// Resize stimuli to this square size; `None` keeps NSD's.
    pub image_size: Option<usize>,
    /// Whether to draw progress bars.
    pub progress: bool,
}

/// The atlases `nsd prepare` reads when none are named (the routes' default ROIs live in them).
pub const DEFAULT_ATLASES: [&str; 3] = ["nsdgeneral", "streams", "prf-visualrois"];

impl PrepareOptions {
    /// `nsd prepare`'s defaults for NSD subject `subject` (1-based) under `nsd_root`, written
    /// to `out`: every session, the [`DEFAULT_ATLASES`], betas z-scored per session, no train
    /// averages, NSD's image size, no progress bars. Callers change single fields with
    /// `PrepareOptions { sessions, ..PrepareOptions::defaults(…) }`.
    pub fn defaults(nsd_root: &Path, subject: usize, out: &Path) -> PrepareOptions {
        PrepareOptions {
            nsd_root: nsd_root.to_path_buf(),
            subject,
            out: out.to_path_buf(),
            sessions: None,
            atlases: DEFAULT_ATLASES.map(String::from).to_vec(),
            zscore: ZScore::Session,
            average_train: false,
            image_size: None,
            progress: false,
        }
    }
}

/// What [`prepare`] did.
#[derive(Debug, Clone, Serialize)]
pub struct PrepareReport {
    /// The prepared subject's folder.
    pub out: PathBuf,
    /// Whether the folder already held this preparation (nothing was written).
    pub already_prepared: bool,
    /// Sessions read and written by this call.
    pub sessions_processed: usize,
    /// Sessions already finished by an interrupted call, skipped.
    pub sessions_resumed: usize,
    /// Voxel-sessions with zero variance (set to 0 after z-scoring).
    pub constant_voxel_sessions: usize,
    /// The subject's `subject.json`.
    pub meta: SubjectMeta,
}

impl PrepareReport {
    /// What was done, for people: the counts of the prepared subject and the sessions read,
    /// or that the folder already held this preparation.
    pub fn text(&self) -> String {
        if self.already_prepared {
            return crate::already_prepared_line(&self.out);
        }
        let m = &self.meta;
        format!(
            "prepared {} at {}: {} train trials ({} images), {} test images ({} trials); {} \
             sessions read, {} resumed\n",
            m.subject,
            self.out.display(),
            m.n_train_trials,
            m.n_train_images,
            m.n_test_images,
            m.n_test_trials,
            self.sessions_processed,
            self.sessions_resumed
        )
    }

    /// A note for standard error when voxel-sessions had zero variance.
    pub fn note(&self) -> Option<String> {
        (self.constant_voxel_sessions > 0).then(|| {
            format!(
                "note: {} voxel-sessions had zero variance and were set to 0",
                self.constant_voxel_sessions
            )
        })
    }
}

/// What the run will do, resolved and checked against the files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Settings {
    nsd_root: PathBuf,
    subject: usize,
    sessions: Vec<usize>,
    atlases: Vec<String>,
    zscore: ZScore,
    average_train: bool,
    image_size: [usize; 2],
}

struct SessionPlan {
    number: usize,
    betas: PathBuf,
    /// 0-based 73k id per trial, in acquisition order.
    stimuli: Vec<usize>,
}

struct AtlasPlan {
    meta: AtlasMeta,
    /// Position of each atlas voxel among the union voxels.
    union_columns: Vec<usize>,
    coords: Vec<[i32; 3]>,
    label_values: Vec<i32>,
}

struct Plan {
    settings: Settings,
    sessions: Vec<SessionPlan>,
    shared: BTreeSet<usize>,
    atlases: Vec<AtlasPlan>,
    /// Flat (Z, Y, X) index into one trial's betas volume for each union voxel.
    union_flat: Vec<usize>,
    union_coords: Vec<[usize; 3]>,
    volume_shape: [usize; 3],
    affine: [[f64; 4]; 4],
    test_ids: Vec<usize>,
    train_image_ids: Vec<usize>,
    image_ids: Vec<usize>,
    brick: PathBuf,
    captions: BTreeMap<usize, Vec<String>>,
    captions_per_image: usize,
}

fn session_trials(responses: &[Response]) -> BTreeMap<usize, Vec<Response>> {
    let mut by_session: BTreeMap<usize, Vec<Response>> = BTreeMap::new();
    for r in responses {
        by_session.entry(r.session).or_default().push(*r);
    }
    for trials in by_session.values_mut() {
        trials.sort_by_key(|r| (r.run, r.trial));
    }
    by_session
}

fn plan(opts: &PrepareOptions) -> Result<Plan> {
    let layout = Layout::new(&opts.nsd_root, opts.subject);
    if !opts.nsd_root.is_dir() {
        return Err(DataError::Missing {
            path: opts.nsd_root.clone(),
            what: "the NSD root directory (holding nsddata/, nsddata_betas/, nsddata_stimuli/)"
                .into(),
        });
    }
    let design = ExpDesign::read(&layout.expdesign())?;
    let responses = read_responses(&layout.responses())?;
    let by_session = session_trials(&responses);
    let available: Vec<usize> = by_session.keys().copied().collect();
    let sessions = match &opts.sessions {
        None => available.clone(),
        Some(chosen) => {
            if let Some(bad) = chosen.iter().find(|s| !by_session.contains_key(s)) {
                return Err(DataError::invalid(
                    layout.responses(),
                    "SESSION",
                    format!(
                        "--sessions within the sessions this subject has ({})",
                        compact_ranges(&available)
                    ),
                    format!("session {bad}"),
                ));
            }
            chosen.clone()
        }
    };
    if sessions.is_empty() {
        return Err(DataError::invalid(
            layout.responses(),
            "SESSION",
            "at least one session",
            "none",
        ));
    }

    // Cross-check behaviour against the experimental design, trial by trial.
    let mut session_plans = Vec::new();
    let mut global = 0usize;
    for (&number, trials) in &by_session {
        let chosen = sessions.contains(&number);
        let mut stimuli = Vec::with_capacity(trials.len());
        for r in trials {
            let expected = design.stimulus(opts.subject, global);
            if expected != Some(r.stimulus) {
                return Err(DataError::invalid(
                    layout.responses(),
                    format!("73KID of session {number} run {} trial {}", r.run, r.trial),
                    format!(
                        "{} (from {} subjectim/masterordering, trial {})",
                        expected
                            .map_or("a trial in masterordering".into(), |e| (e + 1).to_string()),
                        layout.expdesign().display(),
                        global + 1
                    ),
                    (r.stimulus + 1).to_string(),
                ));
            }
            stimuli.push(r.stimulus);
            global += 1;
        }
        if chosen {
            session_plans.push(SessionPlan {
                number,
                betas: layout.betas(number),
                stimuli,
            });
        }
    }

    let shared: BTreeSet<usize> = design.shared.iter().copied().collect();
    let seen: BTreeSet<usize> = session_plans
        .iter()
        .flat_map(|s| s.stimuli.iter().copied())
        .collect();
    let test_ids: Vec<usize> = seen.intersection(&shared).copied().collect();
    let train_image_ids: Vec<usize> = seen.difference(&shared).copied().collect();
    if test_ids.is_empty() {
        return Err(DataError::invalid(
            layout.expdesign(),
            "sharedix",
            format!(
                "shared images that {} saw in sessions {}",
                layout.subject_name(),
                compact_ranges(&sessions)
            ),
            "none: the test set would be empty",
        ));
    }
    if train_image_ids.is_empty() {
        return Err(DataError::invalid(
            layout.responses(),
            "73KID",
            "some images outside sharedix for training",
            "only shared images",
        ));
    }

    // ROI masks: all atlases share one volume.
    let mut volume_shape = None;
    let mut affine = [[0.0; 4]; 4];
    let mut masks = Vec::new();
    for atlas in &opts.atlases {
        let path = layout.roi_mask(atlas);
        let volume = nifti_io::read_volume(&path)?;
        match volume_shape {
            None => {
                volume_shape = Some(volume.shape);
                affine = volume.affine;
            }
            Some(shape) if shape != volume.shape => {
                return Err(DataError::invalid(
                    &path,
                    "dim",
                    format!("the volume shape of the other masks {shape:?}"),
                    format!("{:?}", volume.shape),
                ));
            }
            _ => {}
        }
        let names = read_color_table(&layout.color_table(atlas))?;
        masks.push((atlas.clone(), path, volume, names));
    }
    let volume_shape =
        volume_shape.ok_or_else(|| DataError::Usage("--rois: name at least one atlas".into()))?;
    let [nx, ny, nz] = volume_shape;

    // Union of labelled voxels, in betas order (z, y, x) with x fastest.
    let mut union_index: HashMap<usize, usize> = HashMap::new();
    let mut union_flat = Vec::new();
    let mut union_coords = Vec::new();
    let mut atlases = Vec::new();
    for (name, path, volume, names) in &masks {
        let mut union_columns = Vec::new();
        let mut coords = Vec::new();
        let mut label_values = Vec::new();
        let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let label = volume.get(x, y, z).round() as i32;
                    if label <= 0 {
                        continue;
                    }
                    let flat = x + nx * (y + ny * z);
                    let column = *union_index.entry(flat).or_insert_with(|| {
                        union_flat.push(flat);
                        union_coords.push([x, y, z]);
                        union_flat.len() - 1
                    });
                    union_columns.push(column);
                    coords.push([x as i32, y as i32, z as i32]);
                    label_values.push(label);
                    *counts.entry(label).or_default() += 1;
                }
            }
        }
        if union_columns.is_empty() {
            return Err(DataError::invalid(
                path,
                "labels",
                "some voxels labelled > 0",
                "none",
            ));
        }
        let labels = counts
            .iter()
            .map(|(&value, &n_voxels)| LabelMeta {
                value,
                name: names
                    .get(&value)
                    .cloned()
                    .unwrap_or_else(|| format!("label{value}")),
                n_voxels,
            })
            .collect();
        atlases.push(AtlasPlan {
            meta: AtlasMeta {
                name: name.clone(),
                n_voxels: union_columns.len(),
                labels,
            },
            union_columns,
            coords,
            label_values,
        });
    }

    // Betas files: present, readable, shaped (trials, Z, Y, X) like the masks.
    let first_mask = &masks[0].1;
    for session in &session_plans {
        let dataset = H5Dataset::open(
            &session.betas,
            "betas",
            "NSD betas for this session (betas_sessionNN.hdf5)",
        )?;
        let shape = dataset.shape();
        if shape.len() != 4 || shape[1..] != [nz, ny, nx] {
            return Err(DataError::invalid(
                &session.betas,
                "betas shape",
                format!("(trials, Z, Y, X) = (n, {nz}, {ny}, {nx}) to match the mask {} of shape (X, Y, Z) = {volume_shape:?}", first_mask.display()),
                format!("{shape:?}"),
            ));
        }
        if shape[0] != session.stimuli.len() {
            return Err(DataError::invalid(
                &session.betas,
                "betas trials",
                format!(
                    "{} trials (session {} in responses.tsv)",
                    session.stimuli.len(),
                    session.number
                ),
                shape[0].to_string(),
            ));
        }
        if dataset.kind().is_none() || dataset.kind() == Some(H5Kind::U8) {
            return Err(DataError::invalid(
                &session.betas,
                "betas dtype",
                "int16 (percent signal change × 300) or float",
                format!("{:?}", dataset.dataset.dtype()),
            ));
        }
    }

    // Stimuli and captions.
    let image_ids: Vec<usize> = seen.iter().copied().collect();
    let brick_path = layout.stimuli();
    let brick = H5Dataset::open(&brick_path, "imgBrick", "NSD stimuli (nsd_stimuli.hdf5)")?;
    let brick_shape = brick.shape();
    if brick_shape.len() != 4 || brick_shape[3] != 3 || brick.kind() != Some(H5Kind::U8) {
        return Err(DataError::invalid(
            &brick_path,
            "imgBrick",
            "uint8 (images, height, width, 3)",
            format!("{:?} {:?}", brick_shape, brick.dataset.dtype()),
        ));
    }
    if let Some(&max) = image_ids.last() {
        if max >= brick_shape[0] {
            return Err(DataError::invalid(
                &brick_path,
                "imgBrick",
                format!("more than {max} images"),
                brick_shape[0].to_string(),
            ));
        }
    }
    let image_size = match opts.image_size {
        Some(s) => [s, s],
        None => [brick_shape[1], brick_shape[2]],
    };

    let stim_info = read_stim_info(&layout.stim_info())?;
    let mut coco_by_split: HashMap<String, HashMap<u64, Vec<String>>> = HashMap::new();
    let mut captions = BTreeMap::new();
    for &id in &image_ids {
        let coco = stim_info.get(&id).ok_or_else(|| {
            DataError::invalid(
                layout.stim_info(),
                "nsdId",
                format!("a row for image {id}"),
                "none",
            )
        })?;
        if !coco_by_split.contains_key(&coco.split) {
            let path = layout.captions(&coco.split);
            coco_by_split.insert(coco.split.clone(), read_coco_captions(&path)?);
        }
        let texts = coco_by_split[&coco.split]
            .get(&coco.coco_id)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                DataError::invalid(
                    layout.captions(&coco.split),
                    "annotations",
                    format!("captions for COCO image {} (nsdId {id})", coco.coco_id),
                    "none",
                )
            })?;
        captions.insert(id, texts.iter().take(5).cloned().collect::<Vec<_>>());
    }
    let captions_per_image = captions.values().map(Vec::len).min().unwrap_or(0);

    Ok(Plan {
        settings: Settings {
            nsd_root: opts.nsd_root.clone(),
            subject: opts.subject,
            sessions,
            atlases: opts.atlases.clone(),
            zscore: opts.zscore,
            average_train: opts.average_train,
            image_size,
        },
        sessions: session_plans,
        shared,
        atlases,
        union_flat,
        union_coords,
        volume_shape,
        affine,
        test_ids,
        train_image_ids,
        image_ids,
        brick: brick_path,
        captions,
        captions_per_image,
    })
}

/// `1-3,5` style text for a sorted list.
pub fn compact_ranges(values: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            values[i].to_string()
        } else {
            format!("{}-{}", values[i], values[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// Z-scored (or raw) union-voxel betas of one session: (trials, union voxels), f32.
fn session_betas(
    plan: &Plan,
    session: &SessionPlan,
    progress: bool,
    constant: &mut usize,
) -> Result<Vec<f32>> {
    let dataset = H5Dataset::open(&session.betas, "betas", "NSD betas")?;
    let scale = if dataset.kind() == Some(H5Kind::I16) {
        BETA_SCALE
    } else {
        1.0
    };
    let n_trials = session.stimuli.len();
    let n_voxels = plan.union_flat.len();
    let volume: usize = plan.volume_shape.iter().product();
    let mut betas = vec![0f32; n_trials * n_voxels];
    let bar = bar_aligned(
        n_trials as u64,
        &format!("session {:02}", session.number),
        progress,
        14,
    );
    const BLOCK: usize = 50;
    for first in (0..n_trials).step_by(BLOCK) {
        let count = BLOCK.min(n_trials - first);
        let block = dataset.read_rows_f32(first, count)?;
        for t in 0..count {
            let trial = &block[t * volume..(t + 1) * volume];
            let row = &mut betas[(first + t) * n_voxels..(first + t + 1) * n_voxels];
            for (v, &flat) in plan.union_flat.iter().enumerate() {
                let value = trial[flat];
                if !value.is_finite() {
                    let [x, y, z] = plan.union_coords[v];
                    return Err(DataError::invalid(
                        &session.betas,
                        "betas",
                        "finite values inside the ROIs",
                        format!(
                            "{value} at trial {} voxel (x={x}, y={y}, z={z})",
                            first + t + 1
                        ),
                    ));
                }
                row[v] = value / scale;
            }
        }
        bar.inc(count as u64);
    }
    bar.finish_and_clear();
    if plan.settings.zscore == ZScore::Session {
        *constant += zscore_columns(&mut betas, n_trials, n_voxels);
    }
    Ok(betas)
}

/// Z-scores each column in place (population std, as scipy.stats.zscore); returns the number of
/// constant columns, which are set to 0.
pub fn zscore_columns(values: &mut [f32], rows: usize, cols: usize) -> usize {
    assert_eq!(
        values.len(),
        rows * cols,
        "zscore_columns: values must be rows × cols"
    );
    let mut mean = vec![0f64; cols];
    let mut sq = vec![0f64; cols];
    for r in 0..rows {
        for (c, &v) in values[r * cols..(r + 1) * cols].iter().enumerate() {
            mean[c] += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= rows as f64);
    for r in 0..rows {
        for (c, &v) in values[r * cols..(r + 1) * cols].iter().enumerate() {
            sq[c] += (v as f64 - mean[c]).powi(2);
        }
    }
    let std: Vec<f64> = sq.iter().map(|s| (s / rows as f64).sqrt()).collect();
    let mut constant = 0;
    for c in 0..cols {
        if std[c] <= 1e-12 {
            constant += 1;
        }
    }
    for r in 0..rows {
        for (c, v) in values[r * cols..(r + 1) * cols].iter_mut().enumerate() {
            *v = if std[c] <= 1e-12 {
                0.0
            } else {
                ((*v as f64 - mean[c]) / std[c]) as f32
            };
        }
    }
    constant
}

fn session_cache(staging: &Path, number: usize) -> PathBuf {
    staging
        .join("sessions")
        .join(format!("session{number:02}.npy"))
}

fn run(plan: &Plan, staging: &Path, progress: bool) -> Result<(usize, usize, usize)> {
    let n_union = plan.union_flat.len();
    let (mut processed, mut resumed, mut constant) = (0, 0, 0);
    for session in &plan.sessions {
        let cache = session_cache(staging, session.number);
        if cache.exists() {
            resumed += 1;
            continue;
        }
        let betas = session_betas(plan, session, progress, &mut constant)?;
        npy::write(&cache, &[session.stimuli.len(), n_union], &betas)?;
        processed += 1;
    }

    // Assemble per-atlas train/test arrays from the session caches.
    let test_row: HashMap<usize, usize> = plan
        .test_ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    let train_image_row: HashMap<usize, usize> = plan
        .train_image_ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    let n_train: usize = plan
        .sessions
        .iter()
        .flat_map(|s| &s.stimuli)
        .filter(|id| !plan.shared.contains(id))
        .count();
    let out = Writer::new(staging);
    let mut train_writers = Vec::new();
    let mut test_sums = Vec::new();
    let mut train_sums = Vec::new();
    for atlas in &plan.atlases {
        let n = atlas.union_columns.len();
        train_writers.push(out.betas_rows(&atlas.meta.name, Split::Train, [n_train, n])?);
        test_sums.push(vec![0f32; plan.test_ids.len() * n]);
        if plan.settings.average_train {
            train_sums.push(vec![0f32; plan.train_image_ids.len() * n]);
        }
    }
    let mut test_counts = vec![0usize; plan.test_ids.len()];
    let mut train_counts = vec![0usize; plan.train_image_ids.len()];
    let mut trial_table = String::from("trial\tsession\tsession_trial\tstimulus\tsplit\n");
    let mut train_ids = Vec::with_capacity(n_train);
    let mut row_buffer = Vec::new();
    let mut trial_index = 0;
    let bar = bar_aligned(plan.sessions.len() as u64, "assembling", progress, 14);
    for session in &plan.sessions {
        let cache = npy::MappedF32::open(&session_cache(staging, session.number))?;
        if cache.shape() != [session.stimuli.len(), n_union] {
            return Err(DataError::invalid(
                cache.path(),
                "shape",
                format!(
                    "[{}, {n_union}]: remove {} and rerun",
                    session.stimuli.len(),
                    staging.display()
                ),
                format!("{:?}", cache.shape()),
            ));
        }
        for (t, &id) in session.stimuli.iter().enumerate() {
            let row = cache.row(t);
            let split = if let Some(&test) = test_row.get(&id) {
                test_counts[test] += 1;
                for (a, atlas) in plan.atlases.iter().enumerate() {
                    let n = atlas.union_columns.len();
                    let sums = &mut test_sums[a][test * n..(test + 1) * n];
                    for (s, &c) in sums.iter_mut().zip(&atlas.union_columns) {
                        *s += row[c];
                    }
                }
                "test"
            } else {
                train_ids.push(id);
                let image = train_image_row[&id];
                train_counts[image] += 1;
                for (a, atlas) in plan.atlases.iter().enumerate() {
                    row_buffer.clear();
                    row_buffer.extend(atlas.union_columns.iter().map(|&c| row[c]));
                    train_writers[a].write(&row_buffer)?;
                    if plan.settings.average_train {
                        let n = atlas.union_columns.len();
                        for (s, &v) in train_sums[a][image * n..(image + 1) * n]
                            .iter_mut()
                            .zip(&row_buffer)
                        {
                            *s += v;
                        }
                    }
                }
                "train"
            };
            trial_table.push_str(&format!(
                "{trial_index}\t{}\t{}\t{id}\t{split}\n",
                session.number,
                t + 1
            ));
            trial_index += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for writer in train_writers {
        writer.finish()?;
    }
    // Sums of a handful of repeats are exact enough in f32, which halves the accumulators.
    let averaged = |sums: &[f32], counts: &[usize], n: usize| -> Vec<f32> {
        sums.chunks(n.max(1))
            .zip(counts)
            .flat_map(|(row, &k)| row.iter().map(move |s| s / k as f32))
            .collect()
    };
    for (a, atlas) in plan.atlases.iter().enumerate() {
        let n = atlas.union_columns.len();
        let name = &atlas.meta.name;
        out.betas(
            name,
            Split::Test,
            [plan.test_ids.len(), n],
            &averaged(&test_sums[a], &test_counts, n),
        )?;
        if plan.settings.average_train {
            out.betas(
                name,
                Split::TrainAveraged,
                [plan.train_image_ids.len(), n],
                &averaged(&train_sums[a], &train_counts, n),
            )?;
        }
        out.roi(name, &atlas.coords, &atlas.label_values)?;
    }
    out.row_ids(Split::Train, &train_ids)?;
    out.row_ids(Split::TrainAveraged, &plan.train_image_ids)?;
    out.row_ids(Split::Test, &plan.test_ids)?;
    out.trials(&trial_table)?;
    write_stimuli(plan, &out, progress)?;

    let meta = SubjectMeta {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        subject: format!("subj{:02}", plan.settings.subject),
        sessions: plan.settings.sessions.clone(),
        zscore: plan.settings.zscore.name().into(),
        volume_shape: plan.volume_shape,
        affine: plan.affine,
        image_size: plan.settings.image_size,
        captions_per_image: plan.captions_per_image,
        n_train_trials: n_train,
        n_train_images: plan.train_image_ids.len(),
        n_test_images: plan.test_ids.len(),
        n_test_trials: test_counts.iter().sum(),
        train_averaged: plan.settings.average_train,
        atlases: plan.atlases.iter().map(|a| a.meta.clone()).collect(),
        roi_aliases: BTreeMap::new(),
        simulated: crate::simulated::is_simulated(&plan.settings.nsd_root),
    };
    out.meta(&meta)?;
    Ok((processed, resumed, constant))
}

fn write_stimuli(plan: &Plan, out: &Writer, progress: bool) -> Result<()> {
    let [h, w] = plan.settings.image_size;
    if !out.images_path().exists() {
        let brick = H5Dataset::open(&plan.brick, "imgBrick", "NSD stimuli")?;
        let shape = brick.shape();
        let mut writer = out.images_rows(plan.image_ids.len(), [h, w])?;
        let bar = bar_aligned(plan.image_ids.len() as u64, "stimuli", progress, 14);
        for &id in &plan.image_ids {
            let pixels = brick.read_rows_u8(id, 1)?;
            let image = RgbImage::new(shape[1], shape[2], pixels).resize(h, w);
            writer.write(&image.pixels)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        writer.finish()?;
    }
    out.stimulus_ids(&plan.image_ids)?;
    out.captions(&plan.captions)
}

/// Runs `nsd prepare`. Bad input fails before anything is written; a failure while reading
/// removes the staging directory, so no partial output is left.
pub fn prepare(opts: &PrepareOptions) -> Result<PrepareReport> {
    let plan = plan(opts)?;
    let refusals = Refusals {
        other_settings: [
            "a new directory, or one prepared with the same settings",
            "a subject prepared with other settings: choose another --out or remove it",
        ],
        not_empty: [
            "a new or empty directory",
            "a non-empty directory that is not a prepared subject",
        ],
    };
    let staged = match OutputDir::resume_with(
        &opts.out,
        ".prepare-settings.json",
        "subject.json",
        &plan.settings,
        &refusals,
    )? {
        Resume::Finished(out) => {
            return Ok(PrepareReport {
                meta: read_json(&out.join("subject.json"))?,
                out,
                already_prepared: true,
                sessions_processed: 0,
                sessions_resumed: 0,
                constant_voxel_sessions: 0,
            });
        }
        Resume::Resumed(staged) | Resume::Fresh(staged) => staged,
    };
    let (processed, resumed, constant) = staged.run(|staging| {
        let counts = run(&plan, staging, opts.progress)?;
        let _ = std::fs::remove_dir_all(staging.join("sessions"));
        Ok::<_, DataError>(counts)
    })?;
    let meta = read_json(&opts.out.join("subject.json"))?;
    Ok(PrepareReport {
        out: opts.out.clone(),
        already_prepared: false,
        sessions_processed: processed,
        sessions_resumed: resumed,
        constant_voxel_sessions: constant,
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_compact() {
        assert_eq!(compact_ranges(&[1, 2, 3, 5, 7, 8]), "1-3,5,7-8");
    }

    #[test]
    fn zscore_matches_population_formula() {
        let mut v = vec![1.0, 5.0, 2.0, 5.0, 3.0, 5.0];
        let constant = zscore_columns(&mut v, 3, 2);
        assert_eq!(constant, 1);
        let s = (2.0f64 / 3.0).sqrt() as f32;
        assert!(
            (v[0] + 1.0 / s).abs() < 1e-6 && v[2].abs() < 1e-6 && (v[4] - 1.0 / s).abs() < 1e-6
        );
        assert_eq!(v[1], 0.0);
    }
}
