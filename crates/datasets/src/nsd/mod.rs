//! The Natural Scenes Dataset exactly as it ships: paths, experiment design, behaviour, ROIs, betas, stimuli.

pub mod prepare;
pub mod timeseries;

use crate::error::{require_file, DataError, Result};
use brainrecon_formats::mat;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Betas are stored as percent signal change × 300 in int16.
pub const BETA_SCALE: f32 = 300.0;

/// Paths of one subject's files under an NSD root.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The NSD root (holding `nsddata/`, `nsddata_betas/`, `nsddata_stimuli/`).
    pub root: PathBuf,
    /// 1-based subject number.
    pub subject: usize,
}

impl Layout {
    /// The layout of subject `subject` (1-based) under `root`.
    pub fn new(root: &Path, subject: usize) -> Self {
        Layout {
            root: root.to_path_buf(),
            subject,
        }
    }
    /// `subjNN` (`subj01`).
    pub fn subject_name(&self) -> String {
        format!("subj{:02}", self.subject)
    }
    /// `nsddata/experiments/nsd/nsd_expdesign.mat`.
    pub fn expdesign(&self) -> PathBuf {
        self.root.join("nsddata/experiments/nsd/nsd_expdesign.mat")
    }
    /// `nsddata/experiments/nsd/nsd_stim_info_merged.csv`.
    pub fn stim_info(&self) -> PathBuf {
        self.root
            .join("nsddata/experiments/nsd/nsd_stim_info_merged.csv")
    }
    /// `nsddata/ppdata/subjNN/behav/responses.tsv`.
    pub fn responses(&self) -> PathBuf {
        self.root.join(format!(
            "nsddata/ppdata/{}/behav/responses.tsv",
            self.subject_name()
        ))
    }
    /// `nsddata/ppdata/subjNN/func1pt8mm/roi/<atlas>.nii.gz`.
    pub fn roi_mask(&self, atlas: &str) -> PathBuf {
        self.root.join(format!(
            "nsddata/ppdata/{}/func1pt8mm/roi/{atlas}.nii.gz",
            self.subject_name()
        ))
    }
    /// `nsddata/freesurfer/fsaverage/label/<atlas>.mgz.ctab`: the atlas's label names.
    pub fn color_table(&self, atlas: &str) -> PathBuf {
        self.root.join(format!(
            "nsddata/freesurfer/fsaverage/label/{atlas}.mgz.ctab"
        ))
    }
    /// `nsddata_betas/ppdata/subjNN/func1pt8mm/betas_fithrf_GLMdenoise_RR`.
    pub fn betas_dir(&self) -> PathBuf {
        self.root.join(format!(
            "nsddata_betas/ppdata/{}/func1pt8mm/betas_fithrf_GLMdenoise_RR",
            self.subject_name()
        ))
    }
    /// `betas_sessionNN.hdf5` in [`Layout::betas_dir`] (session 1-based).
    pub fn betas(&self, session: usize) -> PathBuf {
        self.betas_dir()
            .join(format!("betas_session{session:02}.hdf5"))
    }
    /// `nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5`.
    pub fn stimuli(&self) -> PathBuf {
        self.root
            .join("nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5")
    }
    /// `nsddata_stimuli/stimuli/nsd/annotations/captions_<split>.json` (`train2017`, `val2017`).
    pub fn captions(&self, split: &str) -> PathBuf {
        self.root.join(format!(
            "nsddata_stimuli/stimuli/nsd/annotations/captions_{split}.json"
        ))
    }
}

/// Parses `subj01`, `subj1` or `1` into a subject number (1–8).
pub fn parse_subject(text: &str) -> Result<usize> {
    let digits = text.trim().trim_start_matches("subj");
    match digits.parse::<usize>() {
        Ok(n) if (1..=8).contains(&n) => Ok(n),
        _ => Err(DataError::Usage(format!(
            "--subject: expected subj01 … subj08, found '{text}'"
        ))),
    }
}

/// Parses a session list such as `1-37` or `1,3,5-7` (1-based).
pub fn parse_sessions(text: &str) -> Result<Vec<usize>> {
    let bad = || {
        DataError::Usage(format!(
            "--sessions: expected a list like 1-37 or 1,3,5-7, found '{text}'"
        ))
    };
    let mut sessions = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            ),
            None => {
                let n: usize = part.parse().map_err(|_| bad())?;
                (n, n)
            }
        };
        if lo == 0 || hi < lo {
            return Err(bad());
        }
        sessions.extend(lo..=hi);
    }
    sessions.sort_unstable();
    sessions.dedup();
    if sessions.is_empty() {
        return Err(bad());
    }
    Ok(sessions)
}

/// `nsd_expdesign.mat`, converted to 0-based indices.
#[derive(Debug, Clone)]
pub struct ExpDesign {
    /// 0-based 73k ids of the shared images.
    pub shared: Vec<usize>,
    /// subject (0-based row) × image → 0-based 73k id.
    pub subject_images: Vec<Vec<usize>>,
    /// trial → 0-based column of `subject_images`.
    pub master_ordering: Vec<usize>,
}

fn one_based(path: &Path, name: &str, values: &[f64]) -> Result<Vec<usize>> {
    values
        .iter()
        .map(|&v| {
            if v >= 1.0 && v.fract() == 0.0 {
                Ok(v as usize - 1)
            } else {
                Err(DataError::invalid(
                    path,
                    name,
                    "1-based integer indices",
                    format!("{v}"),
                ))
            }
        })
        .collect()
}

impl ExpDesign {
    /// Reads `sharedix`, `subjectim` and `masterordering`. Errors: the file unreadable, a
    /// variable missing or not a positive whole number, `masterordering` outside `subjectim`'s
    /// columns; each naming the file and variable.
    pub fn read(path: &Path) -> Result<Self> {
        let m = mat::read_matrices(path, &["sharedix", "subjectim", "masterordering"])?;
        let shared = one_based(path, "sharedix", m[0].as_vector(path, "sharedix")?)?;
        let subjectim = &m[1];
        let mut subject_images = Vec::with_capacity(subjectim.rows);
        for row in 0..subjectim.rows {
            let values: Vec<f64> = (0..subjectim.cols).map(|c| subjectim.get(row, c)).collect();
            subject_images.push(one_based(path, "subjectim", &values)?);
        }
        let master_ordering = one_based(
            path,
            "masterordering",
            m[2].as_vector(path, "masterordering")?,
        )?;
        if let Some(&bad) = master_ordering.iter().find(|&&c| c >= subjectim.cols) {
            return Err(DataError::invalid(
                path,
                "masterordering",
                format!("indices ≤ {} (columns of subjectim)", subjectim.cols),
                format!("{}", bad + 1),
            ));
        }
        Ok(ExpDesign {
            shared,
            subject_images,
            master_ordering,
        })
    }

    /// 0-based 73k id shown to `subject` (1-based) on overall trial `trial` (0-based).
    pub fn stimulus(&self, subject: usize, trial: usize) -> Option<usize> {
        let column = *self.master_ordering.get(trial)?;
        self.subject_images.get(subject - 1)?.get(column).copied()
    }
}

/// One row of `responses.tsv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Response {
    /// Session, 1-based.
    pub session: usize,
    /// Run within the session, 1-based.
    pub run: usize,
    /// Trial within the run, 1-based.
    pub trial: usize,
    /// 0-based 73k id.
    pub stimulus: usize,
}

/// Reads `responses.tsv` (tab-separated, with a header naming SESSION, RUN, TRIAL and 73KID, all 1-based).
pub fn read_responses(path: &Path) -> Result<Vec<Response>> {
    require_file(path, "NSD behavioural responses (responses.tsv)")?;
    let text = brainrecon_core::text::read_text(path)?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| {
            DataError::invalid(path, "header", "a tab-separated header", "an empty file")
        })?
        .split('\t')
        .map(str::trim)
        .collect();
    let column = |name: &str| {
        header.iter().position(|h| *h == name).ok_or_else(|| {
            DataError::invalid(
                path,
                "header",
                format!("a column named {name}"),
                header.join(","),
            )
        })
    };
    let (c_session, c_run, c_trial, c_id) = (
        column("SESSION")?,
        column("RUN")?,
        column("TRIAL")?,
        column("73KID")?,
    );
    let mut responses = Vec::new();
    for (line_number, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        let value = |c: usize, name: &str| -> Result<usize> {
            fields
                .get(c)
                .and_then(|f| f.trim().parse::<f64>().ok())
                .filter(|v| *v >= 1.0 && v.fract() == 0.0)
                .map(|v| v as usize)
                .ok_or_else(|| {
                    DataError::invalid(
                        path,
                        format!("line {} column {name}", line_number + 2),
                        "a positive integer",
                        fields.get(c).copied().unwrap_or("nothing"),
                    )
                })
        };
        responses.push(Response {
            session: value(c_session, "SESSION")?,
            run: value(c_run, "RUN")?,
            trial: value(c_trial, "TRIAL")?,
            stimulus: value(c_id, "73KID")? - 1,
        });
    }
    Ok(responses)
}

/// Splits one CSV line, honouring double quotes (NSD's cropBox column holds commas).
pub fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// COCO identity of each 73k image, from `nsd_stim_info_merged.csv`.
#[derive(Debug, Clone)]
pub struct CocoImage {
    /// The image's COCO id (`cocoId`).
    pub coco_id: u64,
    /// `train2017` or `val2017`.
    pub split: String,
}

/// Reads the stim-info CSV: 0-based nsdId → COCO id and split.
pub fn read_stim_info(path: &Path) -> Result<HashMap<usize, CocoImage>> {
    require_file(path, "NSD stimulus information (nsd_stim_info_merged.csv)")?;
    let text = brainrecon_core::text::read_text(path)?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = split_csv_line(lines.next().unwrap_or(""));
    let column = |name: &str| {
        header.iter().position(|h| h.trim() == name).ok_or_else(|| {
            DataError::invalid(
                path,
                "header",
                format!("a column named {name}"),
                header.join(","),
            )
        })
    };
    let (c_nsd, c_coco, c_split) = (column("nsdId")?, column("cocoId")?, column("cocoSplit")?);
    let mut images = HashMap::new();
    for (i, line) in lines.enumerate() {
        let fields = split_csv_line(line);
        let get = |c: usize| fields.get(c).map(|s| s.trim()).unwrap_or("");
        let nsd_id: usize = get(c_nsd)
            .parse::<f64>()
            .ok()
            .filter(|v| *v >= 0.0)
            .map(|v| v as usize)
            .ok_or_else(|| {
                DataError::invalid(
                    path,
                    format!("line {} nsdId", i + 2),
                    "a 0-based integer",
                    get(c_nsd),
                )
            })?;
        let coco_id: u64 = get(c_coco)
            .parse::<f64>()
            .ok()
            .filter(|v| *v >= 0.0)
            .map(|v| v as u64)
            .ok_or_else(|| {
                DataError::invalid(
                    path,
                    format!("line {} cocoId", i + 2),
                    "an integer",
                    get(c_coco),
                )
            })?;
        images.insert(
            nsd_id,
            CocoImage {
                coco_id,
                split: get(c_split).to_string(),
            },
        );
    }
    Ok(images)
}

/// Reads a FreeSurfer colour table: label value → name.
pub fn read_color_table(path: &Path) -> Result<BTreeMap<i32, String>> {
    require_file(
        path,
        "a FreeSurfer colour table (.ctab) naming the ROI labels",
    )?;
    let text = brainrecon_core::text::read_text(path)?;
    let mut labels = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let value = parts.next().and_then(|v| v.parse::<i32>().ok());
        let name = parts.next();
        match (value, name) {
            (Some(v), Some(n)) => {
                labels.insert(v, n.to_string());
            }
            _ => {
                return Err(DataError::invalid(
                    path,
                    format!("line {}", i + 1),
                    "'<value> <name> [r g b a]'",
                    line,
                ));
            }
        }
    }
    Ok(labels)
}

#[derive(serde::Deserialize)]
struct CocoCaptions {
    annotations: Vec<CocoAnnotation>,
}

#[derive(serde::Deserialize)]
struct CocoAnnotation {
    image_id: u64,
    id: u64,
    caption: String,
}

/// Reads a COCO captions file: COCO id → captions in annotation-id order.
pub fn read_coco_captions(path: &Path) -> Result<HashMap<u64, Vec<String>>> {
    require_file(path, "COCO captions (captions_*.json)")?;
    let text = brainrecon_core::text::read_text(path)?;
    let parsed: CocoCaptions = serde_json::from_str(&text)
        .map_err(|e| DataError::format(path, "COCO captions JSON", e))?;
    let mut by_image: HashMap<u64, Vec<(u64, String)>> = HashMap::new();
    for a in parsed.annotations {
        by_image
            .entry(a.image_id)
            .or_default()
            .push((a.id, a.caption.trim().to_string()));
    }
    Ok(by_image
        .into_iter()
        .map(|(image, mut caps)| {
            caps.sort_by_key(|(id, _)| *id);
            (image, caps.into_iter().map(|(_, c)| c).collect())
        })
        .collect())
}

/// An HDF5 dataset opened for reading, with the path kept for messages.
pub struct H5Dataset {
    /// The HDF5 file.
    pub path: PathBuf,
    /// The dataset's name in it.
    pub name: String,
    /// The opened dataset.
    pub dataset: hdf5_reader::Dataset,
    _file: hdf5_reader::Hdf5File,
}

/// Element types of a dataset that this project reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H5Kind {
    /// 16-bit signed integers (NSD's betas).
    I16,
    /// 8-bit unsigned integers (NSD's stimuli).
    U8,
    /// 32-bit floats.
    F32,
    /// 64-bit floats.
    F64,
}

impl H5Dataset {
    /// Opens dataset `name` of the HDF5 file `path`; `what` describes the file for errors.
    /// Errors: the file missing or not HDF5, no such dataset, each naming the file.
    pub fn open(path: &Path, name: &str, what: &str) -> Result<Self> {
        require_file(path, what)?;
        let file =
            hdf5_reader::Hdf5File::open(path).map_err(|e| DataError::format(path, "HDF5", e))?;
        let dataset = file.dataset(name).map_err(|_| {
            DataError::invalid(path, "dataset", format!("a dataset named '{name}'"), "none")
        })?;
        Ok(H5Dataset {
            path: path.to_path_buf(),
            name: name.to_string(),
            dataset,
            _file: file,
        })
    }

    /// Size of each axis, slowest first (as h5py reports it).
    pub fn shape(&self) -> Vec<usize> {
        self.dataset.shape().iter().map(|&d| d as usize).collect()
    }

    /// The element type, if one this project reads.
    pub fn kind(&self) -> Option<H5Kind> {
        use hdf5_reader::Datatype as D;
        match self.dataset.dtype() {
            D::FixedPoint {
                size: 2,
                signed: true,
                ..
            } => Some(H5Kind::I16),
            D::FixedPoint {
                size: 1,
                signed: false,
                ..
            } => Some(H5Kind::U8),
            D::FloatingPoint { size: 4, .. } => Some(H5Kind::F32),
            D::FloatingPoint { size: 8, .. } => Some(H5Kind::F64),
            _ => None,
        }
    }

    /// Refuses reading rows `first..first + count` when that overflows or their copy in memory
    /// (`element` bytes a value) passes [`crate::limits::ARRAY_BYTES`]: the reader allocates
    /// the selection whole, sized by the dataset's header.
    pub fn check_rows(&self, first: usize, count: usize, element: u64) -> Result<()> {
        let field = format!("dataset '{}' rows {first}+{count}", self.name);
        if first.checked_add(count).is_none() {
            return Err(DataError::invalid(
                &self.path,
                field,
                "an addressable row range",
                "an overflow",
            ));
        }
        let mut dims = vec![count as u64];
        dims.extend(self.dataset.shape().iter().skip(1).copied());
        crate::limits::array_bytes(&self.path, &field, &dims, element)?;
        Ok(())
    }

    fn selection(&self, first: usize, count: usize) -> hdf5_reader::SliceInfo {
        use hdf5_reader::SliceInfoElem as E;
        let mut selections = vec![E::Slice {
            start: first as u64,
            end: (first + count) as u64,
            step: 1,
        }];
        for _ in 1..self.dataset.ndim() {
            selections.push(E::Slice {
                start: 0,
                end: u64::MAX,
                step: 1,
            });
        }
        hdf5_reader::SliceInfo { selections }
    }

    fn read_error(&self, e: impl std::fmt::Display) -> DataError {
        DataError::format(
            &self.path,
            "HDF5",
            format!("dataset '{}': {e} (is the file truncated?)", self.name),
        )
    }

    /// Rows `first..first+count` along axis 0, converted to f32, in C order.
    pub fn read_rows_f32(&self, first: usize, count: usize) -> Result<Vec<f32>> {
        // 8: the widest type read before the conversion to f32.
        self.check_rows(first, count, 8)?;
        let sel = self.selection(first, count);
        let values: Vec<f32> = match self.kind() {
            Some(H5Kind::I16) => self
                .dataset
                .read_slice::<i16>(&sel)
                .map_err(|e| self.read_error(e))?
                .iter()
                .map(|&v| v as f32)
                .collect(),
            Some(H5Kind::U8) => self
                .dataset
                .read_slice::<u8>(&sel)
                .map_err(|e| self.read_error(e))?
                .iter()
                .map(|&v| v as f32)
                .collect(),
            Some(H5Kind::F32) => self
                .dataset
                .read_slice::<f32>(&sel)
                .map_err(|e| self.read_error(e))?
                .iter()
                .copied()
                .collect(),
            Some(H5Kind::F64) => self
                .dataset
                .read_slice::<f64>(&sel)
                .map_err(|e| self.read_error(e))?
                .iter()
                .map(|&v| v as f32)
                .collect(),
            None => {
                return Err(DataError::invalid(
                    &self.path,
                    &self.name,
                    "int16, uint8 or float data",
                    format!("{:?}", self.dataset.dtype()),
                ))
            }
        };
        Ok(values)
    }

    /// Rows `first..first+count` of a uint8 dataset, in C order.
    pub fn read_rows_u8(&self, first: usize, count: usize) -> Result<Vec<u8>> {
        if self.kind() != Some(H5Kind::U8) {
            return Err(DataError::invalid(
                &self.path,
                &self.name,
                "uint8 data",
                format!("{:?}", self.dataset.dtype()),
            ));
        }
        self.check_rows(first, count, 1)?;
        let sel = self.selection(first, count);
        Ok(self
            .dataset
            .read_slice::<u8>(&sel)
            .map_err(|e| self.read_error(e))?
            .iter()
            .copied()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_subjects_parse() {
        assert_eq!(parse_sessions("1-3,5").unwrap(), vec![1, 2, 3, 5]);
        assert!(parse_sessions("3-1").is_err());
        assert!(parse_sessions("0").is_err());
        assert_eq!(parse_subject("subj01").unwrap(), 1);
        assert_eq!(parse_subject("7").unwrap(), 7);
        assert!(parse_subject("subj09").is_err());
    }

    #[test]
    fn csv_quotes_keep_commas() {
        let fields = split_csv_line("0,532481,val2017,\"(0, 0.1, 0, 0)\",0.1,0");
        assert_eq!(fields.len(), 6);
        assert_eq!(fields[3], "(0, 0.1, 0, 0)");
    }
}
