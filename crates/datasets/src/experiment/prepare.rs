//! `glm prepare`: a `glm` folder + the stimulus files → a prepared subject in the layout `nsd
//! prepare` writes, so that every image route runs on a lab's own experiment unchanged.
//!
//! - Each condition is a stimulus (its file named by the events' condition column, relative
//!   to the dataset's `stimuli/` folder as BIDS' `stim_file` is; ids are the conditions'
//!   positions in glm.json).
//! - The test set is the conditions shown at least `--test-repeats` times (or a list); their
//!   betas are averaged over repeats, as NSD's shared images are. Every other trial is a
//!   training row.
//! - Betas are z-scored per voxel over each session's trials (NSD's routes' convention), or
//!   kept in percent signal change.
//! - ROIs from a segmentation (see [`super::atlas`]); `nsdgeneral` resolves to `visual`.
//!
//! Work happens in `<out>.partial/`, renamed to `<out>` when complete; a rerun with the same
//! settings does nothing.

use super::atlas::{
    atlas_voxels, find_fmriprep_aparcaseg, sample_grayordinate_labels, sample_labels, AtlasSource,
    AtlasVoxels, ATLASES,
};
use super::{GlmFolder, MODELS};
use crate::error::{DataError, Result};
use crate::nsd::prepare::{zscore_columns, ZScore};
use crate::prepared::{Split, SubjectMeta, Writer, FORMAT, FORMAT_VERSION};
use brainrecon_core::fs::{read_json, write_json_atomic, OutputDir, Refusals};
use brainrecon_formats::image::RgbImage;
use brainrecon_formats::video::frames::read_frame;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which conditions are the test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestSet {
    /// Conditions shown at least this many times.
    MinRepeats(usize),
    /// Conditions named in a text file, one per line.
    List(PathBuf),
}

/// What `glm prepare` reads and writes.
#[derive(Debug, Clone)]
pub struct ExperimentOptions {
    /// The `brainrecon glm` folder.
    pub glm: PathBuf,
    /// The prepared subject's folder.
    pub out: PathBuf,
    /// One of GLMsingle's folder names ([`MODELS`]).
    pub model: String,
    /// The folder stimulus names are relative to (None: the raw dataset's `stimuli/`).
    pub stimuli: Option<PathBuf>,
    /// JSON: stimulus name → captions (a list, or one string).
    pub captions: Option<PathBuf>,
    /// A label volume (None: fMRIPrep's aparc+aseg in the runs' space).
    pub atlas: Option<PathBuf>,
    /// An ITK transform (`.h5`) from the runs' space into `atlas`'s (`mode-image`, as fMRIPrep's
    /// `from-T1w_to-<SPACE>` for a T1w atlas under template-space runs).
    pub atlas_transform: Option<PathBuf>,
    /// The atlas' BIDS dseg table (None: fMRIPrep's `desc-aparcaseg_dseg.tsv` if present).
    pub atlas_labels: Option<PathBuf>,
    /// Atlases to write, from [`ATLASES`].
    pub rois: Vec<String>,
    /// Which conditions are the test set.
    pub test: TestSet,
    /// How betas are normalised.
    pub zscore: ZScore,
    /// Also write the train betas averaged over repeats (`--average-train`).
    pub average_train: bool,
    /// Square size the images are resized to (None: theirs, when all share one).
    pub image_size: Option<usize>,
    /// Leave out conditions without an image (THINGS' catch trials) instead of failing.
    pub leave_out_missing: bool,
}

/// What the run did.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentReport {
    /// The prepared subject's folder.
    pub out: PathBuf,
    /// Whether the folder already held this preparation (nothing was written).
    pub already_prepared: bool,
    /// The label volume the ROIs were sampled from.
    pub atlas: PathBuf,
    /// Whether it was on another grid and sampled by nearest neighbour.
    pub atlas_resampled: bool,
    /// The transform the runs' voxels went through into the atlas' space.
    pub atlas_transform: Option<PathBuf>,
    /// Conditions in `glm.json`.
    pub n_conditions: usize,
    /// Conditions left out for want of an image (with `leave_out_missing`).
    pub left_out: Vec<String>,
    /// Voxel-sessions with zero variance (0 after z-scoring).
    pub constant_voxel_sessions: usize,
    /// The subject's `subject.json`.
    pub meta: SubjectMeta,
}

impl ExperimentReport {
    /// The report as `glm prepare` prints it, one line each.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let (report, m) = (self, &self.meta);
        let mut text = String::new();
        if report.already_prepared {
            text.push_str(&crate::already_prepared_line(&report.out));
            return text;
        }
        let _ = writeln!(
            text,
            "prepared {} into {}: {} train trials of {} images, {} test images ({} trials averaged), {} sessions",
            m.subject,
            report.out.display(),
            m.n_train_trials,
            m.n_train_images,
            m.n_test_images,
            m.n_test_trials,
            m.sessions.len()
        );
        if !report.left_out.is_empty() {
            let _ = writeln!(
                text,
                "left out {} conditions without an image (e.g. {})",
                report.left_out.len(),
                report.left_out[0]
            );
        }
        let atlases: Vec<String> = m
            .atlases
            .iter()
            .map(|a| format!("{} {} voxels", a.name, a.n_voxels))
            .collect();
        let _ = writeln!(
            text,
            "ROIs from {}{}: {}",
            report.atlas.display(),
            match (&report.atlas_transform, report.atlas_resampled) {
                (Some(t), _) => format!(
                    " (through {}, sampled at the runs' voxels by nearest neighbour)",
                    t.display()
                ),
                (None, true) => " (sampled at the runs' voxels by nearest neighbour)".into(),
                (None, false) => String::new(),
            },
            atlases.join(", ")
        );
        text
    }
}

/// What a rerun must match to count as done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    glm: PathBuf,
    model: String,
    stimuli: PathBuf,
    captions: Option<PathBuf>,
    atlas: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    atlas_transform: Option<PathBuf>,
    atlas_labels: Option<PathBuf>,
    rois: Vec<String>,
    test: TestSet,
    zscore: ZScore,
    average_train: bool,
    image_size: [usize; 2],
    leave_out_missing: bool,
}

/// Everything checked and read before anything is written.
struct Plan {
    settings: Settings,
    glm: GlmFolder,
    atlases: Vec<AtlasVoxels>,
    atlas_resampled: bool,
    /// Per condition: whether it has an image (conditions without one are left out).
    used: Vec<bool>,
    /// Per condition: test or not.
    is_test: Vec<bool>,
    images: Vec<RgbImage>,
    captions: BTreeMap<usize, Vec<String>>,
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| DataError::io(path, e))
}

fn check_options(opts: &ExperimentOptions) -> Result<()> {
    if !MODELS.contains(&opts.model.as_str()) {
        return Err(DataError::Usage(format!(
            "--betas: expected one of GLMsingle's models ({}), found '{}'",
            MODELS.join(", "),
            opts.model
        )));
    }
    if opts.rois.is_empty() || opts.rois.iter().any(|r| !ATLASES.contains(&r.as_str())) {
        return Err(DataError::Usage(format!(
            "--rois: expected a comma-separated list of {}, found '{}'",
            ATLASES.join(", "),
            opts.rois.join(",")
        )));
    }
    if opts.atlas_transform.is_some() && opts.atlas.is_none() {
        return Err(DataError::Usage(
            "--atlas-transform: goes with --atlas (fMRIPrep's own transform is found without it)"
                .into(),
        ));
    }
    match opts.test {
        TestSet::MinRepeats(k) if k < 2 => Err(DataError::Usage(format!(
            "--test-repeats: expected 2 or more (test images are averaged over repeats), found {k}"
        ))),
        _ => Ok(()),
    }
}

fn plan(opts: &ExperimentOptions) -> Result<Plan> {
    check_options(opts)?;
    let glm = GlmFolder::open(&opts.glm)?;

    let stimuli = match &opts.stimuli {
        Some(s) => s.clone(),
        None => glm
            .meta
            .setting_path("bids_root")
            .map(|r| r.join("stimuli"))
            .ok_or_else(|| DataError::Usage("--stimuli: glm.json names no raw dataset".into()))?,
    };
    let files = condition_files(&glm, &stimuli, opts.leave_out_missing)?;
    let used: Vec<bool> = files.iter().map(Option::is_some).collect();
    let is_test = test_conditions(&glm, &opts.test, &used)?;
    let (atlas, table) = atlas_files(opts, &glm)?;
    let labels = match glm.timeseries.meta().grayordinates {
        Some(_) => sample_grayordinate_labels(&atlas.volume, table.as_deref(), &glm.timeseries)?,
        None => sample_labels(&atlas, table.as_deref(), &glm.timeseries)?,
    };
    let (atlas, atlas_transform) = (atlas.volume, atlas.transform);
    let atlases: Vec<AtlasVoxels> = opts
        .rois
        .iter()
        .map(|name| atlas_voxels(name, &labels))
        .collect();
    if let Some(empty) = atlases.iter().find(|a| a.meta.n_voxels == 0) {
        return Err(DataError::invalid(
            &atlas,
            "labels",
            format!(
                "voxels of the '{}' ROIs inside the runs' mask",
                empty.meta.name
            ),
            "none (is it FreeSurfer's aparc+aseg? name its table with --atlas-labels)",
        ));
    }
    let present: Vec<PathBuf> = files.into_iter().flatten().collect();
    let images = read_images(&present, opts.image_size)?;
    let image_size = [images[0].height, images[0].width];
    let captions = match &opts.captions {
        Some(path) => read_captions(path, &glm.meta.conditions, &used)?,
        None => BTreeMap::new(),
    };
    let settings = Settings {
        glm: absolute(&opts.glm)?,
        model: opts.model.clone(),
        stimuli: absolute(&stimuli)?,
        captions: opts.captions.as_deref().map(absolute).transpose()?,
        atlas: absolute(&atlas)?,
        atlas_transform: atlas_transform.as_deref().map(absolute).transpose()?,
        atlas_labels: table.as_deref().map(absolute).transpose()?,
        rois: opts.rois.clone(),
        test: opts.test.clone(),
        zscore: opts.zscore,
        average_train: opts.average_train,
        image_size,
        leave_out_missing: opts.leave_out_missing,
    };
    Ok(Plan {
        settings,
        glm,
        atlases,
        atlas_resampled: labels.resampled,
        used,
        is_test,
        images,
        captions,
    })
}

/// Extensions tried after a stimulus name as written (GOD names its images without one).
const IMAGE_EXTENSIONS: [&str; 5] = ["", ".JPEG", ".jpg", ".jpeg", ".png"];

/// Kamitani lab's ImageNet ids as their events write them (`1639765.0476809999`, a float of
/// the WordNet id and the image number) → the file stem `n01639765_47681`.
fn imagenet_stem(name: &str) -> Option<String> {
    let (synset, image) = name.split_once('.')?;
    if synset.len() > 8 || !synset.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction: f64 = format!("0.{image}").parse().ok()?;
    let number = (fraction * 1e6).round() as u64;
    Some(format!("n{:08}_{number}", synset.parse::<u64>().ok()?))
}

/// Files under `root` by file name, down to `depth` folders (BOLD5000 sorts its images into
/// COCO/, ImageNet/ and Scene/).
fn index_files(root: &Path, depth: usize, index: &mut BTreeMap<String, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if depth > 0 {
                index_files(&path, depth - 1, index);
            }
        } else if let Some(name) = path.file_name() {
            index
                .entry(name.to_string_lossy().into_owned())
                .or_insert(path);
        }
    }
}

/// Finds a condition's image: `<stimuli>/<name>` (or beside the raw dataset), with an image
/// extension added, as an ImageNet id, or by file name anywhere under `<stimuli>`.
struct StimulusFinder {
    folders: Vec<PathBuf>,
    by_name: Option<BTreeMap<String, PathBuf>>,
}

impl StimulusFinder {
    fn find(&mut self, name: &str) -> Option<PathBuf> {
        let stems: Vec<String> = std::iter::once(name.to_string())
            .chain(imagenet_stem(name))
            .collect();
        for stem in &stems {
            for ext in IMAGE_EXTENSIONS {
                for folder in &self.folders {
                    let path = folder.join(format!("{stem}{ext}"));
                    if path.is_file() {
                        return Some(path);
                    }
                }
            }
        }
        let stimuli = self.folders[0].clone();
        let by_name = self.by_name.get_or_insert_with(|| {
            let mut index = BTreeMap::new();
            index_files(&stimuli, 4, &mut index);
            index
        });
        stems.iter().find_map(|stem| {
            let file = Path::new(stem).file_name()?.to_string_lossy().into_owned();
            IMAGE_EXTENSIONS
                .iter()
                .find_map(|ext| by_name.get(&format!("{file}{ext}")).cloned())
        })
    }
}

/// The image of each condition; None for those left out (missing, with `leave_out_missing`).
fn condition_files(
    glm: &GlmFolder,
    stimuli: &Path,
    leave_out_missing: bool,
) -> Result<Vec<Option<PathBuf>>> {
    let mut finder = StimulusFinder {
        folders: std::iter::once(stimuli.to_path_buf())
            .chain(glm.meta.setting_path("bids_root"))
            .collect(),
        by_name: None,
    };
    let files: Vec<Option<PathBuf>> = glm
        .meta
        .conditions
        .iter()
        .map(|name| finder.find(name))
        .collect();
    let missing: Vec<&String> = glm
        .meta
        .conditions
        .iter()
        .zip(&files)
        .filter(|(_, f)| f.is_none())
        .map(|(n, _)| n)
        .collect();
    if missing.is_empty() || (leave_out_missing && missing.len() < files.len()) {
        return Ok(files);
    }
    let shown: Vec<String> = missing.iter().take(3).map(|n| format!("'{n}'")).collect();
    Err(DataError::invalid(
        glm.root.join("glm.json"),
        format!("conditions ('{}' column)", glm.meta.condition_column),
        format!(
            "an image under {} (--stimuli) for every condition, or --leave-out-missing: fit glm \
             with --condition-column naming the stimulus column",
            stimuli.display()
        ),
        format!(
            "{} of {} without one, e.g. {}",
            missing.len(),
            files.len(),
            shown.join(", ")
        ),
    ))
}

/// Per condition, whether it is a test image.
fn test_conditions(glm: &GlmFolder, test: &TestSet, used: &[bool]) -> Result<Vec<bool>> {
    let conditions = &glm.meta.conditions;
    let mut repeats = vec![0usize; conditions.len()];
    glm.meta
        .trials
        .iter()
        .for_each(|t| repeats[t.condition] += 1);
    let is_test: Vec<bool> = match test {
        TestSet::MinRepeats(k) => repeats
            .iter()
            .zip(used)
            .map(|(&r, &u)| u && r >= *k)
            .collect(),
        TestSet::List(path) => {
            let text = brainrecon_core::text::read_text(path)?;
            let mut is_test = vec![false; conditions.len()];
            for (n, line) in text.lines().map(str::trim).enumerate() {
                if line.is_empty() {
                    continue;
                }
                let Some(c) = conditions.iter().position(|c| c == line) else {
                    return Err(DataError::invalid(
                        path,
                        format!("line {}", n + 1),
                        "a condition of glm.json",
                        format!("'{line}'"),
                    ));
                };
                is_test[c] = used[c];
            }
            is_test
        }
    };
    let n_test = is_test.iter().filter(|&&t| t).count();
    let n_used = used.iter().filter(|&&u| u).count();
    if n_test < 2 || n_test == n_used {
        let most = repeats.iter().copied().max().unwrap_or(0);
        return Err(DataError::Usage(format!(
            "the test set has {n_test} of {} conditions: expected at least two test images and \
             some training images (conditions are shown up to {most} times; set --test-repeats \
             or --test-list)",
            n_used
        )));
    }
    Ok(is_test)
}

/// The atlas volume (with the transform into its space) and its label table.
fn atlas_files(
    opts: &ExperimentOptions,
    glm: &GlmFolder,
) -> Result<(AtlasSource, Option<PathBuf>)> {
    let fmriprep = glm.meta.setting_path("fmriprep");
    if let Some(g) = &glm.timeseries.meta().grayordinates {
        let is_dlabel = opts
            .atlas
            .as_ref()
            .is_some_and(|a| a.to_string_lossy().ends_with(".dlabel.nii"));
        if !is_dlabel || opts.atlas_transform.is_some() {
            return Err(DataError::invalid(
                opts.glm.join("timeseries/runset.json"),
                "--atlas",
                "for a fit of CIFTI grayordinates, a parcellation of them as a CIFTI dense label file (--atlas FILE.dlabel.nii, no --atlas-transform)",
                format!("{} for the grayordinates of {}", opts.atlas.as_ref().map_or("no atlas".into(), |a| a.display().to_string()), g.source.display()),
            ));
        }
    }
    let atlas = match (&opts.atlas, &fmriprep) {
        (Some(a), _) => AtlasSource {
            volume: a.clone(),
            transform: opts.atlas_transform.clone(),
        },
        (None, Some(root)) => {
            find_fmriprep_aparcaseg(root, &glm.meta.subject, glm.meta.space().unwrap_or("T1w"))?
        }
        (None, None) => {
            return Err(DataError::Usage(
                "--atlas: glm.json names no fMRIPrep folder".into(),
            ))
        }
    };
    let table = opts.atlas_labels.clone().or_else(|| {
        let shipped = fmriprep?.join("desc-aparcaseg_dseg.tsv");
        (opts.atlas.is_none() && shipped.is_file()).then_some(shipped)
    });
    Ok((atlas, table))
}

fn read_images(files: &[PathBuf], size: Option<usize>) -> Result<Vec<RgbImage>> {
    let mut images = Vec::with_capacity(files.len());
    for file in files {
        let image = read_frame(file)?;
        let image = match size {
            Some(s) => image.resize(s, s),
            None => image,
        };
        if let Some(first) = images.first() {
            let first: &RgbImage = first;
            if (first.height, first.width) != (image.height, image.width) {
                return Err(DataError::invalid(
                    file,
                    "size",
                    format!(
                        "{}×{} as {} (or resize all with --image-size)",
                        first.width,
                        first.height,
                        files[0].display()
                    ),
                    format!("{}×{}", image.width, image.height),
                ));
            }
        }
        images.push(image);
    }
    Ok(images)
}

/// Captions by condition index from JSON `{stimulus name: [captions] | caption}`.
fn read_captions(
    path: &Path,
    conditions: &[String],
    used: &[bool],
) -> Result<BTreeMap<usize, Vec<String>>> {
    let raw: BTreeMap<String, serde_json::Value> = read_json(path)?;
    let mut captions = BTreeMap::new();
    for (c, name) in conditions.iter().enumerate().filter(|(c, _)| used[*c]) {
        let list: Vec<String> = match raw.get(name) {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        if list.is_empty() {
            return Err(DataError::invalid(
                path,
                name,
                "a caption or a list of captions for every stimulus",
                "none",
            ));
        }
        captions.insert(c, list);
    }
    Ok(captions)
}

/// (trials, union voxels) betas of the atlases' voxels, z-scored per session (`sessions`:
/// each trial's) if asked. Returns the betas, the union's run-set voxels and the constant
/// voxel-sessions.
fn trial_betas(plan: &Plan, sessions: &[usize]) -> Result<(Vec<f32>, Vec<usize>, usize)> {
    let mut union: Vec<usize> = plan
        .atlases
        .iter()
        .flat_map(|a| a.columns.clone())
        .collect();
    union.sort_unstable();
    union.dedup();
    let betas = plan.glm.betas(&plan.settings.model)?;
    let n_trials = plan.glm.meta.trials.len();
    let mut values = vec![0f32; n_trials * union.len()];
    for (u, &v) in union.iter().enumerate() {
        let row = betas.row(v);
        if let Some(t) = row.iter().position(|b| !b.is_finite()) {
            let [x, y, z] = plan.glm.timeseries.voxel_indices()[v];
            return Err(DataError::invalid(
                betas.path(),
                "betasmd",
                "finite betas inside the ROIs",
                format!("{} at voxel (x={x}, y={y}, z={z}), trial {}", row[t], t + 1),
            ));
        }
        for (t, &b) in row.iter().enumerate() {
            values[t * union.len() + u] = b;
        }
    }
    let mut constant = 0;
    if plan.settings.zscore == ZScore::Session {
        let n = union.len();
        for session in 1..=sessions.iter().copied().max().unwrap_or(0) {
            let rows: Vec<usize> = (0..n_trials)
                .filter(|&t| sessions[t] == session && plan.used[plan.glm.meta.trials[t].condition])
                .collect();
            if rows.is_empty() {
                continue;
            }
            let mut block: Vec<f32> = rows
                .iter()
                .flat_map(|&t| values[t * n..(t + 1) * n].to_vec())
                .collect();
            constant += zscore_columns(&mut block, rows.len(), n);
            for (i, &t) in rows.iter().enumerate() {
                values[t * n..(t + 1) * n].copy_from_slice(&block[i * n..(i + 1) * n]);
            }
        }
    }
    Ok((values, union, constant))
}

/// Mean of `rows` of a (.., n) matrix per group: groups in order, each a list of rows.
fn group_means(values: &[f32], n: usize, groups: &[Vec<usize>], columns: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(groups.len() * columns.len());
    for rows in groups {
        let mut sums = vec![0f64; columns.len()];
        for &r in rows {
            for (s, &c) in sums.iter_mut().zip(columns) {
                *s += values[r * n + c] as f64;
            }
        }
        out.extend(sums.iter().map(|s| (s / rows.len() as f64) as f32));
    }
    out
}

fn write_subject(plan: &Plan, staging: &Path) -> Result<(SubjectMeta, usize)> {
    let sessions = plan.glm.trial_sessions();
    let (values, union, constant) = trial_betas(plan, &sessions)?;
    let n = union.len();
    let meta = &plan.glm.meta;
    let train_rows: Vec<usize> = (0..meta.trials.len())
        .filter(|&t| plan.used[meta.trials[t].condition] && !plan.is_test[meta.trials[t].condition])
        .collect();
    // Each condition's trials, in trial order.
    let mut trials_of: Vec<Vec<usize>> = vec![Vec::new(); meta.conditions.len()];
    for (t, trial) in meta.trials.iter().enumerate() {
        trials_of[trial.condition].push(t);
    }
    let test_ids: Vec<usize> = (0..meta.conditions.len())
        .filter(|&c| plan.is_test[c])
        .collect();
    let train_ids: Vec<usize> = (0..meta.conditions.len())
        .filter(|&c| plan.used[c] && !plan.is_test[c] && !trials_of[c].is_empty())
        .collect();
    let test_groups: Vec<Vec<usize>> = test_ids.iter().map(|&c| trials_of[c].clone()).collect();
    let train_groups: Vec<Vec<usize>> = train_ids.iter().map(|&c| trials_of[c].clone()).collect();
    let out = Writer::new(staging);
    for atlas in &plan.atlases {
        let columns: Vec<usize> = atlas
            .columns
            .iter()
            .map(|c| {
                union
                    .binary_search(c)
                    .expect("atlas voxels are in the union")
            })
            .collect();
        let name = &atlas.meta.name;
        let singles = group_means(
            &values,
            n,
            &train_rows.iter().map(|&t| vec![t]).collect::<Vec<_>>(),
            &columns,
        );
        out.betas(
            name,
            Split::Train,
            [train_rows.len(), columns.len()],
            &singles,
        )?;
        let test = group_means(&values, n, &test_groups, &columns);
        out.betas(name, Split::Test, [test_ids.len(), columns.len()], &test)?;
        if plan.settings.average_train {
            let averaged = group_means(&values, n, &train_groups, &columns);
            out.betas(
                name,
                Split::TrainAveraged,
                [train_ids.len(), columns.len()],
                &averaged,
            )?;
        }
        let coords: Vec<[i32; 3]> = atlas
            .columns
            .iter()
            .map(|&c| plan.glm.timeseries.voxel_indices()[c].map(|x| x as i32))
            .collect();
        out.roi(name, &coords, &atlas.labels)?;
    }
    let train_stimuli: Vec<usize> = train_rows
        .iter()
        .map(|&t| meta.trials[t].condition)
        .collect();
    out.row_ids(Split::Train, &train_stimuli)?;
    out.row_ids(Split::TrainAveraged, &train_ids)?;
    out.row_ids(Split::Test, &test_ids)?;
    write_trial_table(plan, &sessions, &out)?;
    write_stimuli(plan, &out)?;
    let n_sessions = sessions.iter().copied().max().unwrap_or(1);
    let mut roi_aliases = BTreeMap::new();
    if plan.settings.rois.iter().any(|r| r == "visual") {
        roi_aliases.insert("nsdgeneral".to_string(), "visual".to_string());
    }
    let subject_meta = SubjectMeta {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        subject: format!("sub-{}", meta.subject),
        sessions: (1..=n_sessions).collect(),
        zscore: plan.settings.zscore.name().into(),
        volume_shape: plan.glm.timeseries.volume_shape(),
        affine: *plan.glm.timeseries.affine(),
        image_size: plan.settings.image_size,
        captions_per_image: plan.captions.values().map(Vec::len).min().unwrap_or(0),
        n_train_trials: train_rows.len(),
        n_train_images: train_ids.len(),
        n_test_images: test_ids.len(),
        n_test_trials: test_groups.iter().map(Vec::len).sum(),
        train_averaged: plan.settings.average_train,
        atlases: plan.atlases.iter().map(|a| a.meta.clone()).collect(),
        roi_aliases,
        simulated: plan
            .glm
            .meta
            .setting_path("bids_root")
            .is_some_and(|root| crate::simulated::is_simulated(&root)),
    };
    out.meta(&subject_meta)?;
    Ok((subject_meta, constant))
}

fn write_trial_table(plan: &Plan, sessions: &[usize], out: &Writer) -> Result<()> {
    let mut table = String::from("trial\tsession\tsession_trial\tstimulus\tsplit\tcondition\n");
    let mut in_session: BTreeMap<usize, usize> = BTreeMap::new();
    for (t, trial) in plan.glm.meta.trials.iter().enumerate() {
        if !plan.used[trial.condition] {
            continue;
        }
        let k = in_session.entry(sessions[t]).or_insert(0);
        *k += 1;
        let split = if plan.is_test[trial.condition] {
            "test"
        } else {
            "train"
        };
        table.push_str(&format!(
            "{t}\t{}\t{k}\t{}\t{split}\t{}\n",
            sessions[t], trial.condition, plan.glm.meta.conditions[trial.condition]
        ));
    }
    out.trials(&table)
}

fn write_stimuli(plan: &Plan, out: &Writer) -> Result<()> {
    let pixels: Vec<u8> = plan
        .images
        .iter()
        .flat_map(|im| im.pixels.clone())
        .collect();
    out.images(plan.images.len(), plan.settings.image_size, &pixels)?;
    let ids: Vec<usize> = (0..plan.used.len()).filter(|&c| plan.used[c]).collect();
    out.stimulus_ids(&ids)?;
    out.captions(&plan.captions)?;
    let names: BTreeMap<String, &String> = plan
        .glm
        .meta
        .conditions
        .iter()
        .enumerate()
        .filter(|(id, _)| plan.used[*id])
        .map(|(id, name)| (id.to_string(), name))
        .collect();
    write_json_atomic(&out.path("stimuli/names.json"), &names)
}

/// Runs `glm prepare`. Bad input fails before anything is written; a failure while writing
/// removes the staging folder.
pub fn prepare_experiment(opts: &ExperimentOptions) -> Result<ExperimentReport> {
    let plan = plan(opts)?;
    let settings_path = opts.out.join(".prepare-settings.json");
    let report = |meta: SubjectMeta, already: bool, constant: usize| ExperimentReport {
        out: opts.out.clone(),
        already_prepared: already,
        atlas: plan.settings.atlas.clone(),
        atlas_resampled: plan.atlas_resampled,
        atlas_transform: plan.settings.atlas_transform.clone(),
        n_conditions: plan.glm.meta.conditions.len(),
        left_out: (0..plan.used.len())
            .filter(|&c| !plan.used[c])
            .map(|c| plan.glm.meta.conditions[c].clone())
            .collect(),
        constant_voxel_sessions: constant,
        meta,
    };
    let refusals = Refusals {
        other_settings: [
            "a new folder, or one prepared with the same settings",
            "a subject prepared with other settings: choose another --out or remove it",
        ],
        not_empty: ["a new or empty folder", "a folder with other contents"],
    };
    if opts.out.join("subject.json").is_file() {
        let previous: Option<Settings> = read_json(&settings_path).ok();
        if previous.as_ref() == Some(&plan.settings) {
            return Ok(report(read_json(&opts.out.join("subject.json"))?, true, 0));
        }
        return Err(refusals.other_settings_error(&opts.out));
    }
    let (meta, constant) =
        OutputDir::create_empty(&opts.out, refusals.not_empty)?.run(|staging| {
            let done = write_subject(&plan, staging)?;
            write_json_atomic(&staging.join(".prepare-settings.json"), &plan.settings)?;
            Ok::<_, DataError>(done)
        })?;
    Ok(report(meta, false, constant))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kamitani_imagenet_ids_become_file_stems() {
        assert_eq!(
            imagenet_stem("1639765.0476809999").as_deref(),
            Some("n01639765_47681")
        );
        assert_eq!(
            imagenet_stem("12596148.006386").as_deref(),
            Some("n12596148_6386")
        );
        assert_eq!(
            imagenet_stem("4254680.00119").as_deref(),
            Some("n04254680_1190")
        );
        assert_eq!(imagenet_stem("scene-00012.png"), None);
        assert_eq!(imagenet_stem("bird/bird_06s.jpg"), None);
    }
}
