//! OpenNeuro ds005531 (the drama and film dataset that Nakagi et al. 2024 analyse) read as
//! shipped, the way its authors' loader (`util/util_dataload.py` of nkmjm/fMRI_Narrative_movie)
//! and its `dataInfo.mat` describe it:
//!
//! * `derivatives/preprocessed_data/sub-<S>/sub-<S>_task-<title>_run-NN.mat`: MATLAB v7.3
//!   (HDF5 behind a 512-byte user block), variable `dataDT`. h5py reads it as (time, voxels)
//!   (`bold[:, mask]` in the loader), i.e. MATLAB's voxels × time: HDF5 lists dimensions
//!   slowest first, so the stored dataset is `[time, voxels]`. The voxel axis covers the whole
//!   volume in MATLAB's column-major order (x fastest): the loader reshapes a full-length map
//!   to `(datasize[2], datasize[1], datasize[0])`, and `dataInfo.mat` gives `datasize`
//!   96 × 96 × 72 for every subject.
//! * `derivatives/preprocessed_data/sub-<S>/vset_100.mat`: MATLAB v5, `tvoxels`, 1-based
//!   indices along that voxel axis (the loader subtracts 1).
//! * The first 20 volumes of every run are dummy scans: `dataInfo.mat` lists each run's
//!   `samples` as 21 … duration (1-based), hence `--drop-seconds` 20 by default (TR 1 s).
//! * `derivatives/annotation/<title>_run-NN_<kind>_each1sec.txt`: one line per second of the
//!   movie, dummy seconds included (the feature extractor embeds each line; features are
//!   indexed by the same samples), in the markup [`annotation_segments`] reads. The line
//!   count is the movie's duration: dataDT often has more rows (the scanner ran on), and the
//!   loaders keep rows 21 … duration only.
//! * `derivatives/feature/<title>_run-NN_<kind>_GPT2medium_<jp|en>_layer<L>_mean.mat`: MAT
//!   v5, `stim` (duration × 1024) float32, the authors' GPT-2 features, one row per second.
//!
//! The derivatives carry neither TR nor affine: the TR comes from the raw runs' `_bold.json`
//! sidecars (inherited as BIDS says), the grid and affine from `--mask FILE.nii[.gz]` when
//! given, else from the header of the subject's raw BOLD run with the same task and run
//! (`sub-<S>/[ses-*/]func/sub-<S>_[ses-*_]task-<title>_run-NN_bold.nii[.gz]`), which is
//! assumed to share the preprocessed data's grid; its voxel count must match `dataDT`'s.

use crate::bids::{self, Entities};
use crate::error::{DataError, Result};
use crate::nsd::{H5Dataset, H5Kind};
use brainrecon_formats::mat;
use std::path::{Path, PathBuf};

/// Dummy scans at the start of every ds005531 run (`samples` start at 21).
pub const DUMMY_SECONDS: f64 = 20.0;

/// One preprocessed run.
#[derive(Debug, Clone)]
pub struct MatRun {
    /// The `sub-<S>_task-<title>_run-NN.mat` file.
    pub path: PathBuf,
    /// Its name's entities (`sub`, `task`, `run`).
    pub entities: Entities,
}

/// `<root>/derivatives/preprocessed_data/sub-<S>`: the subject's preprocessed runs.
pub fn preprocessed_dir(root: &Path, subject: &str) -> PathBuf {
    root.join("derivatives/preprocessed_data")
        .join(format!("sub-{subject}"))
}

/// Every `sub-<S>_task-<title>_run-NN.mat` of the subject.
pub fn mat_runs(root: &Path, subject: &str) -> Result<Vec<MatRun>> {
    let dir = preprocessed_dir(root, subject);
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir,
            what: format!("ds005531's preprocessed runs of subject {subject}"),
        });
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| DataError::io(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut runs = Vec::new();
    for path in entries {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Some(stem) = name.strip_suffix(".mat") else {
            continue;
        };
        let Some((entities, suffix)) = bids::parse_name(stem) else {
            continue;
        };
        if suffix.is_empty()
            && bids::entity(&entities, "sub") == Some(subject)
            && bids::entity(&entities, "task").is_some()
        {
            runs.push(MatRun { path, entities });
        }
    }
    Ok(runs)
}

/// The raw BOLD series matching a preprocessed run (same task and run), if downloaded.
pub fn raw_bold(root: &Path, subject: &str, entities: &Entities) -> Result<Option<PathBuf>> {
    if !root.join(format!("sub-{subject}")).is_dir() {
        return Ok(None);
    }
    let task = bids::entity(entities, "task");
    let run = bids::entity(entities, "run").and_then(|r| r.parse::<u32>().ok());
    Ok(bids::bold_files(root, subject)?
        .into_iter()
        .find(|b| {
            bids::entity(&b.entities, "task") == task
                && bids::entity(&b.entities, "run").and_then(|r| r.parse::<u32>().ok()) == run
        })
        .map(|b| b.path))
}

/// `vset_100.mat`'s `tvoxels` as sorted 0-based indices along `dataDT`'s voxel axis.
pub fn read_tvoxels(path: &Path, n_volume: usize) -> Result<Vec<usize>> {
    let m = mat::read_matrices(path, &["tvoxels"])?;
    let values = m[0].as_vector(path, "tvoxels")?;
    let mut indices = Vec::with_capacity(values.len());
    for &v in values {
        if !(v >= 1.0 && v.fract() == 0.0 && v <= n_volume as f64) {
            return Err(DataError::invalid(
                path,
                "tvoxels",
                format!("1-based voxel indices from 1 to {n_volume} (the voxels of dataDT)"),
                format!("{v}"),
            ));
        }
        indices.push(v as usize - 1);
    }
    indices.sort_unstable();
    if let Some(w) = indices.windows(2).find(|w| w[0] == w[1]) {
        return Err(DataError::invalid(
            path,
            "tvoxels",
            "distinct voxel indices",
            format!("{} twice", w[0] + 1),
        ));
    }
    if indices.is_empty() {
        return Err(DataError::invalid(
            path,
            "tvoxels",
            "at least one voxel",
            "none",
        ));
    }
    Ok(indices)
}

/// `dataDT` of one run, opened: `[time, voxels]` as stored.
pub struct DataDt {
    inner: H5Dataset,
    /// Time points (rows).
    pub n_times: usize,
    /// Voxels (columns): the whole volume, in MATLAB's column-major order (x fastest).
    pub n_voxels: usize,
}

impl DataDt {
    /// Opens `dataDT` of a v7.3 run. Errors: not an HDF5/v7.3 file, no `dataDT`, not a 2-D
    /// single, double or int16 matrix, each naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        let inner = H5Dataset::open(
            path,
            "dataDT",
            "a ds005531 preprocessed run (MATLAB v7.3 .mat)",
        )
        .map_err(|e| match e {
            DataError::Format { path, detail, .. } => DataError::format(
                path,
                "MATLAB v7.3 (HDF5)",
                format!("{detail} (ds005531's preprocessed runs are v7.3 files)"),
            ),
            other => other,
        })?;
        let shape = inner.shape();
        if shape.len() != 2 || shape.contains(&0) {
            return Err(DataError::invalid(
                path,
                "dataDT",
                "a 2-D matrix (time, voxels)",
                format!("{shape:?}"),
            ));
        }
        if !matches!(inner.kind(), Some(H5Kind::F32 | H5Kind::F64 | H5Kind::I16)) {
            return Err(DataError::invalid(
                path,
                "dataDT",
                "single or double values",
                format!("{:?}", inner.dataset.dtype()),
            ));
        }
        Ok(DataDt {
            n_times: shape[0],
            n_voxels: shape[1],
            inner,
        })
    }

    /// The file opened.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Rows (time points) `first..first + count`, all voxels, as f64 in C order.
    pub fn rows(&self, first: usize, count: usize) -> Result<Vec<f64>> {
        use hdf5_reader::{SliceInfo, SliceInfoElem as E};
        self.inner.check_rows(first, count, 8)?;
        let selection = SliceInfo {
            selections: vec![
                E::Slice {
                    start: first as u64,
                    end: (first + count) as u64,
                    step: 1,
                },
                E::Slice {
                    start: 0,
                    end: u64::MAX,
                    step: 1,
                },
            ],
        };
        let error = |e: hdf5_reader::error::Error| {
            DataError::format(
                self.path(),
                "HDF5",
                format!(
                    "dataDT rows {first}..{}: {e} (is the file truncated?)",
                    first + count
                ),
            )
        };
        let d = &self.inner.dataset;
        Ok(match self.inner.kind() {
            Some(H5Kind::F64) => d
                .read_slice::<f64>(&selection)
                .map_err(error)?
                .iter()
                .copied()
                .collect(),
            Some(H5Kind::F32) => d
                .read_slice::<f32>(&selection)
                .map_err(error)?
                .iter()
                .map(|&v| v as f64)
                .collect(),
            _ => d
                .read_slice::<i16>(&selection)
                .map_err(error)?
                .iter()
                .map(|&v| v as f64)
                .collect(),
        })
    }
}

/// How an annotation line is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// The line is the text (the simulator's and most datasets' annotations).
    Plain,
    /// ds005531's markup (see [`annotation_segments`]).
    Ds005531,
}

/// The non-blank text segments of one annotation line of `kind`.
///
/// ds005531's lines are read as its authors' `util_feat.preproc_line` / `text_cleaning` do:
/// everything through the first `]` (the `[HH:MM:SS]` stamp) is dropped, newlines and U+3000
/// removed and `不明` ("unknown") read as `..`. `speechTranscription*` lines keep the text
/// after `メイン#` (none without it), split on `/` into one segment per utterance, each keeping what follows its
/// speaker's first `:`; the other kinds split on `/` into one segment per annotator (5 for
/// `objectiveAnnot50chara`, 2 for `story`). Segments that are empty, `.` or `..` are blank and
/// left out; a line's features are the mean over its segments.
pub fn annotation_segments(markup: Markup, kind: &str, line: &str) -> Vec<String> {
    if markup == Markup::Plain {
        return match line.trim() {
            "" => Vec::new(),
            _ => vec![line.to_string()],
        };
    }
    let text = match line.find(']') {
        Some(end) => &line[end + 1..],
        None => line,
    };
    let text: String = text
        .chars()
        .filter(|&c| c != '\n' && c != '\r' && c != '\u{3000}')
        .collect::<String>()
        .replace("不明", "..");
    let segments: Vec<&str> = if kind.starts_with("speechTranscription") {
        // No `メイン#`: no main-track speech this second.
        let Some((_, speech)) = text.split_once("メイン#") else {
            return Vec::new();
        };
        speech
            .split('/')
            .map(|u| u.split_once(':').map_or(u, |(_, said)| said))
            .collect()
    } else {
        text.split('/').collect()
    };
    segments
        .into_iter()
        .map(str::trim)
        .filter(|s| !matches!(*s, "" | "." | ".."))
        .map(str::to_string)
        .collect()
}

/// The markup of the run set's annotations: ds005531's for its layout, else plain text.
pub fn markup_of_layout(layout: &str) -> Markup {
    if layout == "ds005531" {
        Markup::Ds005531
    } else {
        Markup::Plain
    }
}

/// `derivatives/feature/<title>_run-NN_<kind>_<features>_mean.mat`: the dataset's own
/// features of one run and kind (e.g. `features` = `GPT2medium_jp_layer12`).
pub fn feature_file(root: &Path, title: &str, run: u32, kind: &str, features: &str) -> PathBuf {
    root.join("derivatives/feature")
        .join(format!("{title}_run-{run:02}_{kind}_{features}_mean.mat"))
}
