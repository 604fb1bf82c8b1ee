//! The prepared subject: one directory per subject that every later command reads.
//!
//! ```text
//! subject.json                      metadata (SubjectMeta)
//! trials.tsv                        every used trial: trial, session, session_trial, stimulus, split
//! train_stimulus_ids.npy            int64 (n_train_trials,)  0-based 73k id of each train row
//! train_image_ids.npy               int64 (n_train_images,)  sorted unique train ids
//! test_stimulus_ids.npy             int64 (n_test_images,)   sorted shared ids the subject saw
//! betas/<atlas>/train.npy           float32 (n_train_trials, n_voxels)  single trials
//! betas/<atlas>/test.npy            float32 (n_test_images, n_voxels)   averaged over repeats
//! betas/<atlas>/train_averaged.npy  float32 (n_train_images, n_voxels)  with --average-train
//! rois/<atlas>.npy                  int32 (n_voxels, 3)  voxel (x, y, z) in the volume
//! rois/<atlas>_labels.npy           int32 (n_voxels,)    atlas label value of each voxel
//! stimuli/ids.npy                   int64 (n_images,)    sorted train ∪ test ids
//! stimuli/images.npy                uint8 (n_images, h, w, 3)
//! stimuli/captions.json             {"<id>": [captions …]}
//! ```
//! Voxels are ordered as in NSD's betas array (Z, Y, X) with x fastest, the order the community code uses.

use crate::error::{DataError, Result};
use brainrecon_core::fs::{read_json, write_bytes_atomic, write_json_atomic};
use brainrecon_formats::npy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `subject.json`'s format name.
pub const FORMAT: &str = "brainrecon-prepared-subject";
/// `subject.json`'s format version.
pub const FORMAT_VERSION: u32 = 1;
/// The one atlas of a subject in a group's space (adapted or pooled): its voxels are the
/// space's k coordinates, and every target decodes from it.
pub const SHARED_ATLAS: &str = "shared";

/// One label of an atlas.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabelMeta {
    /// Its value in `rois/<atlas>_labels.npy` (> 0).
    pub value: i32,
    /// Its name (`V1v`, `ventral`, …).
    pub name: String,
    /// Voxels with this label.
    pub n_voxels: usize,
}

/// One atlas: its betas' columns are its labelled voxels.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AtlasMeta {
    /// The atlas name (`nsdgeneral`, `streams`, `prf-visualrois`, …).
    pub name: String,
    /// Voxels with a label > 0.
    pub n_voxels: usize,
    /// Its labels, by value.
    pub labels: Vec<LabelMeta>,
}

/// `subject.json`: what the prepared subject holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubjectMeta {
    /// [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The subject's name (`subj01`).
    pub subject: String,
    /// The sessions prepared (1-based).
    pub sessions: Vec<usize>,
    /// `session` or `none`.
    pub zscore: String,
    /// (X, Y, Z) of the functional volume.
    pub volume_shape: [usize; 3],
    /// Row-major voxel → scanner affine.
    pub affine: [[f64; 4]; 4],
    /// [h, w]
    pub image_size: [usize; 2],
    /// Captions of each stimulus in `stimuli/captions.json` (the fewest any has).
    pub captions_per_image: usize,
    /// Rows of `betas/<atlas>/train.npy`: single train trials.
    pub n_train_trials: usize,
    /// Distinct train images (rows of `train_averaged.npy`, when written).
    pub n_train_images: usize,
    /// Rows of `betas/<atlas>/test.npy`: test images, averaged over repeats.
    pub n_test_images: usize,
    /// Test trials averaged into those rows.
    pub n_test_trials: usize,
    /// Whether `train_averaged.npy` was written (`--average-train`).
    pub train_averaged: bool,
    /// The atlases, each with its betas under `betas/<atlas>/`.
    pub atlases: Vec<AtlasMeta>,
    /// ROI names the routes use by default that this subject holds under another name
    /// (`nsdgeneral` → `visual` for a subject prepared from its own experiment).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roi_aliases: BTreeMap<String, String>,
    /// Prepared from `brainrecon simulate`'s data (reports then stretch a template cortex
    /// over its brain).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
}

/// Which betas to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Single train trials (rows follow `train_stimulus_ids.npy`).
    Train,
    /// Train images averaged over repeats (rows follow `train_image_ids.npy`).
    TrainAveraged,
    /// Test images averaged over repeats (rows follow `test_stimulus_ids.npy`).
    Test,
}

/// A named voxel set: a whole atlas, or one label of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Roi {
    /// The name it was asked by (`streams/ventral`).
    pub name: String,
    /// The atlas whose betas it reads.
    pub atlas: String,
    /// Columns of the atlas betas; `None` means all of them.
    pub columns: Option<Vec<usize>>,
    /// Voxels in it.
    pub n_voxels: usize,
}

/// A matrix of betas, row-major (rows, voxels).
#[derive(Debug, Clone)]
pub struct Betas {
    /// Rows (trials or images).
    pub rows: usize,
    /// Columns (voxels).
    pub voxels: usize,
    /// `rows × voxels` betas, row-major.
    pub values: Vec<f32>,
}

/// An opened prepared subject (see the module docs for its files).
pub struct PreparedSubject {
    /// The subject's folder.
    pub root: PathBuf,
    /// Its `subject.json`.
    pub meta: SubjectMeta,
}

impl PreparedSubject {
    /// Opens the prepared subject in `root`. Errors: no `subject.json` there, or one of another
    /// format or version.
    pub fn open(root: &Path) -> Result<Self> {
        let meta_path = root.join(META);
        if !meta_path.exists() {
            return Err(DataError::Missing {
                path: meta_path,
                what: "a prepared subject (made by `brainrecon nsd prepare` or `brainrecon simulate --layout prepared`)".into(),
            });
        }
        let meta: SubjectMeta = read_json(&meta_path)?;
        if meta.format != FORMAT || meta.format_version != FORMAT_VERSION {
            return Err(DataError::invalid(
                &meta_path,
                "format",
                format!("{FORMAT} version {FORMAT_VERSION}"),
                format!("{} version {}", meta.format, meta.format_version),
            ));
        }
        Ok(PreparedSubject {
            root: root.to_path_buf(),
            meta,
        })
    }

    /// A file of the subject, by its path relative to the folder.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Every ROI name with its voxel count: atlases, and `atlas/label` for each label.
    pub fn roi_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for atlas in &self.meta.atlases {
            counts.insert(atlas.name.clone(), atlas.n_voxels);
            for label in &atlas.labels {
                counts.insert(format!("{}/{}", atlas.name, label.name), label.n_voxels);
            }
        }
        counts
    }

    /// Resolves `atlas`, `atlas/label`, a label name unique across atlases, or a union of
    /// one atlas' labels, `atlas/label+label+…` (the caption route's six `streams` ROIs).
    pub fn roi(&self, name: &str) -> Result<Roi> {
        let resolved = self.resolve_alias(name);
        let name = resolved.as_str();
        if name.contains('+') {
            return self.roi_union(name);
        }
        if let Some(atlas) = self.meta.atlases.iter().find(|a| a.name == name) {
            return Ok(Roi {
                name: name.into(),
                atlas: atlas.name.clone(),
                columns: None,
                n_voxels: atlas.n_voxels,
            });
        }
        let mut matches = Vec::new();
        for atlas in &self.meta.atlases {
            for label in &atlas.labels {
                if name == format!("{}/{}", atlas.name, label.name) || name == label.name {
                    matches.push((atlas, label));
                }
            }
        }
        let (atlas, label) = match matches.as_slice() {
            [one] => *one,
            _ => {
                let known: Vec<String> = self.roi_counts().into_keys().collect();
                let what = if matches.is_empty() {
                    "no such ROI"
                } else {
                    "an ambiguous label: name it as atlas/label"
                };
                return Err(DataError::invalid(
                    self.path(META),
                    "rois",
                    format!("one of {}", known.join(", ")),
                    format!("'{name}' ({what})"),
                ));
            }
        };
        let labels = npy::read_i64(&roi_labels_path(&self.root, &atlas.name))?;
        let columns: Vec<usize> = labels
            .data
            .iter()
            .enumerate()
            .filter(|(_, &v)| v == label.value as i64)
            .map(|(i, _)| i)
            .collect();
        Ok(Roi {
            name: format!("{}/{}", atlas.name, label.name),
            atlas: atlas.name.clone(),
            n_voxels: columns.len(),
            columns: Some(columns),
        })
    }

    /// `name` with an aliased atlas (the part before '/') replaced by what it stands for.
    fn resolve_alias(&self, name: &str) -> String {
        let (head, tail) = match name.split_once('/') {
            Some((h, t)) => (h, Some(t)),
            None => (name, None),
        };
        match (self.meta.roi_aliases.get(head), tail) {
            (Some(target), Some(tail)) => format!("{target}/{tail}"),
            (Some(target), None) => target.clone(),
            (None, _) => name.to_string(),
        }
    }

    /// The atlas an atlas name (or alias) refers to.
    pub fn atlas_name(&self, name: &str) -> String {
        self.meta
            .roi_aliases
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    /// `atlas/a+b+…`: the voxels of labels a, b, … of one atlas, in the atlas' column order.
    fn roi_union(&self, name: &str) -> Result<Roi> {
        let invalid = |what: &str| {
            DataError::invalid(
                self.path(META),
                "rois",
                "atlas/label+label+… with labels of that atlas (e.g. streams/early+ventral)",
                format!("'{name}' ({what})"),
            )
        };
        let (atlas, labels) = name
            .split_once('/')
            .ok_or_else(|| invalid("no atlas named before '/'"))?;
        let mut columns = Vec::new();
        for label in labels.split('+') {
            if label.is_empty() {
                return Err(invalid("an empty label"));
            }
            let part = self.roi(&format!("{atlas}/{label}"))?;
            columns.extend(part.columns.unwrap_or_default());
        }
        columns.sort_unstable();
        if columns.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("a label named twice"));
        }
        Ok(Roi {
            name: name.to_string(),
            atlas: atlas.to_string(),
            n_voxels: columns.len(),
            columns: Some(columns),
        })
    }

    /// `betas/<atlas>/{train,train_averaged,test}.npy` for `split`.
    pub fn betas_path(&self, atlas: &str, split: Split) -> PathBuf {
        betas_path(&self.root, atlas, split)
    }

    /// Memory-maps the betas of an ROI's atlas and copies out the ROI's columns.
    pub fn betas(&self, roi: &Roi, split: Split) -> Result<Betas> {
        let path = self.betas_path(&roi.atlas, split);
        if split == Split::TrainAveraged && !path.exists() {
            return Err(DataError::Missing {
                path,
                what: "train betas averaged over repeats: prepare with --average-train".into(),
            });
        }
        let mapped = npy::MappedF32::open(&path)?;
        let (rows, cols) = match mapped.shape() {
            [r, c] => (*r, *c),
            other => {
                return Err(DataError::invalid(
                    &path,
                    "shape",
                    "(rows, voxels)",
                    format!("{other:?}"),
                ))
            }
        };
        let values = match &roi.columns {
            None => mapped.as_slice().to_vec(),
            Some(columns) if columns.last().is_some_and(|&c| c >= cols) => {
                return Err(DataError::invalid(
                    &path,
                    "shape",
                    format!(
                        "at least {} voxel columns (the voxels of rois/{}_labels.npy)",
                        columns.last().map_or(0, |c| c + 1),
                        roi.atlas
                    ),
                    format!("{:?}", mapped.shape()),
                ))
            }
            Some(columns) => {
                let mut values = Vec::with_capacity(rows * columns.len());
                for r in 0..rows {
                    let row = mapped.row(r);
                    values.extend(columns.iter().map(|&c| row[c]));
                }
                values
            }
        };
        let voxels = roi.columns.as_ref().map_or(cols, |c| c.len());
        npy::require_finite(
            &path,
            &values,
            voxels,
            "finite betas (columns: the ROI's voxels)",
        )?;
        Ok(Betas {
            rows,
            voxels,
            values,
        })
    }

    /// Non-negative ids (a negative one would wrap to a huge index).
    fn ids(&self, relative: &str) -> Result<Vec<usize>> {
        let path = self.path(relative);
        npy::read_i64(&path)?
            .data
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                usize::try_from(v).map_err(|_| {
                    DataError::invalid(&path, format!("value {i}"), "an id ≥ 0", v.to_string())
                })
            })
            .collect()
    }

    /// The stimulus id (NSD: 0-based 73k id) of each row of `train.npy` (`train_stimulus_ids.npy`).
    /// Errors: the file missing or malformed, or a negative id.
    pub fn train_stimulus_ids(&self) -> Result<Vec<usize>> {
        self.row_ids(Split::Train)
    }
    /// The stimulus id (NSD: 0-based 73k id) of each row of `train_averaged.npy`
    /// (`train_image_ids.npy`), sorted. Errors: the file missing or malformed, or a negative id.
    pub fn train_image_ids(&self) -> Result<Vec<usize>> {
        self.row_ids(Split::TrainAveraged)
    }
    /// The stimulus id (NSD: 0-based 73k id) of each row of `test.npy` (`test_stimulus_ids.npy`),
    /// sorted. Errors: the file missing or malformed, or a negative id.
    pub fn test_stimulus_ids(&self) -> Result<Vec<usize>> {
        self.row_ids(Split::Test)
    }

    /// Stimulus ids of the rows of `split`.
    pub fn row_ids(&self, split: Split) -> Result<Vec<usize>> {
        self.ids(row_ids_file(split))
    }

    /// The sorted ids of the stimuli (`stimuli/ids.npy`), checked, without opening the images:
    /// features and decoders need only the ids (a group's pooled subject has no images).
    pub fn stimulus_ids(&self) -> Result<Vec<usize>> {
        let ids = self.ids(STIMULUS_IDS)?;
        // Rows are looked up by binary search over the ids.
        if let Some(i) = (1..ids.len()).find(|&i| ids[i] <= ids[i - 1]) {
            return Err(DataError::invalid(
                self.path(STIMULUS_IDS),
                format!("value {i}"),
                format!("ids in increasing order, each once (after {})", ids[i - 1]),
                ids[i].to_string(),
            ));
        }
        Ok(ids)
    }

    /// The stimulus images, memory-mapped, with the sorted ids of their rows.
    pub fn images(&self) -> Result<Stimuli> {
        let ids = self.stimulus_ids()?;
        let path = self.path(IMAGES);
        let images = npy::MappedU8::open(&path)?;
        // Every row becomes an h × w RGB image: check the shape once here, not per image.
        let [h, w] = self.meta.image_size;
        if images.shape() != [ids.len(), h, w, 3] {
            return Err(DataError::invalid(
                &path,
                "shape",
                format!(
                    "[n, h, w, 3] = [{}, {h}, {w}, 3] (one RGB image per stimulus id, at subject.json's image_size)",
                    ids.len()
                ),
                format!("{:?}", images.shape()),
            ));
        }
        Ok(Stimuli {
            ids,
            images,
            size: self.meta.image_size,
        })
    }

    /// Reads `stimuli/captions.json`: each stimulus id's captions.
    pub fn captions(&self) -> Result<BTreeMap<usize, Vec<String>>> {
        let raw: BTreeMap<String, Vec<String>> = read_json(&self.path(CAPTIONS))?;
        Ok(raw
            .into_iter()
            .filter_map(|(k, v)| k.parse().ok().map(|k| (k, v)))
            .collect())
    }

    /// The summary that `brainrecon info` prints.
    pub fn info(&self) -> Result<serde_json::Value> {
        let m = &self.meta;
        Ok(serde_json::json!({
            "subject": m.subject,
            "sessions": m.sessions,
            "zscore": m.zscore,
            "n_train_trials": m.n_train_trials,
            "n_train_images": m.n_train_images,
            "n_test_images": m.n_test_images,
            "n_test_trials": m.n_test_trials,
            "rois": self.roi_counts(),
            "test_stimulus_ids": self.test_stimulus_ids()?,
            "image_size": m.image_size,
            "captions_per_image": m.captions_per_image,
            "volume_shape": m.volume_shape,
            "train_averaged": m.train_averaged,
        }))
    }

    /// What `brainrecon info` prints for people: the counts, the image size, the volume and the
    /// voxels of every ROI, one per line.
    pub fn info_text(&self) -> String {
        use std::fmt::Write;
        let m = &self.meta;
        let sessions = crate::nsd::prepare::compact_ranges(&m.sessions);
        let [h, w] = m.image_size;
        let mut text = format!(
            "subject        {}\nsessions       {sessions}\nbetas          z-score: {}\n\
             train          {} trials, {} images\n\
             test           {} images ({} trials averaged)\n\
             images         {h}×{w} px, {} captions each\n\
             volume         {:?} (X, Y, Z)\nrois\n",
            m.subject,
            m.zscore,
            m.n_train_trials,
            m.n_train_images,
            m.n_test_images,
            m.n_test_trials,
            m.captions_per_image,
            m.volume_shape
        );
        for (name, count) in self.roi_counts() {
            let _ = writeln!(text, "  {name:<28} {count:>7} voxels");
        }
        text
    }
}

// The layout of the module docs, shared by the reader and the writer.

fn betas_path(root: &Path, atlas: &str, split: Split) -> PathBuf {
    let file = match split {
        Split::Train => "train.npy",
        Split::TrainAveraged => "train_averaged.npy",
        Split::Test => "test.npy",
    };
    root.join("betas").join(atlas).join(file)
}

fn row_ids_file(split: Split) -> &'static str {
    match split {
        Split::Train => "train_stimulus_ids.npy",
        Split::TrainAveraged => "train_image_ids.npy",
        Split::Test => "test_stimulus_ids.npy",
    }
}

fn roi_coords_path(root: &Path, atlas: &str) -> PathBuf {
    root.join(format!("rois/{atlas}.npy"))
}

fn roi_labels_path(root: &Path, atlas: &str) -> PathBuf {
    root.join(format!("rois/{atlas}_labels.npy"))
}

const TRIALS: &str = "trials.tsv";
const STIMULUS_IDS: &str = "stimuli/ids.npy";
const IMAGES: &str = "stimuli/images.npy";
const CAPTIONS: &str = "stimuli/captions.json";
const META: &str = "subject.json";

/// Writes the files of a prepared subject (the layout in the module docs) into a folder,
/// usually a staging folder that the caller moves into place once complete; the writing side
/// of [`PreparedSubject::open`]. Each file appears under its name only once complete, and
/// parent folders are made as needed. Ids are written as int64, voxel data as int32.
pub struct Writer {
    root: PathBuf,
}

impl Writer {
    /// A writer into `root` (nothing is written yet).
    pub fn new(root: &Path) -> Writer {
        Writer {
            root: root.to_path_buf(),
        }
    }

    /// Where a file of the subject goes.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Betas of `atlas` for `split` as one float32 (rows, voxels) matrix, row-major.
    /// Errors if `values` does not hold rows × voxels elements.
    pub fn betas(
        &self,
        atlas: &str,
        split: Split,
        [rows, voxels]: [usize; 2],
        values: &[f32],
    ) -> Result<()> {
        npy::write(
            &betas_path(&self.root, atlas, split),
            &[rows, voxels],
            values,
        )
    }

    /// Betas of `atlas` for `split` streamed row by row into a float32 (rows, voxels) file:
    /// write each row of `voxels` values, then `finish` the writer.
    pub fn betas_rows(
        &self,
        atlas: &str,
        split: Split,
        [rows, voxels]: [usize; 2],
    ) -> Result<npy::Writer<f32>> {
        npy::Writer::create(&betas_path(&self.root, atlas, split), &[rows, voxels])
    }

    /// `rois/<atlas>.npy` (int32 (n, 3), the (x, y, z) of each atlas voxel in the volume) and
    /// `rois/<atlas>_labels.npy` (int32 (n,), the atlas label value of each voxel), one entry
    /// per column of the atlas' betas.
    pub fn roi(&self, atlas: &str, coords: &[[i32; 3]], labels: &[i32]) -> Result<()> {
        let flat: Vec<i32> = coords.iter().flatten().copied().collect();
        npy::write(
            &roi_coords_path(&self.root, atlas),
            &[coords.len(), 3],
            &flat,
        )?;
        npy::write(&roi_labels_path(&self.root, atlas), &[labels.len()], labels)
    }

    /// The stimulus id of each row of `split`'s betas (`train_stimulus_ids.npy`,
    /// `train_image_ids.npy` or `test_stimulus_ids.npy`).
    pub fn row_ids(&self, split: Split, ids: &[usize]) -> Result<()> {
        write_ids(&self.path(row_ids_file(split)), ids)
    }

    /// `trials.tsv`: the trial table, header line included, as the caller builds it.
    pub fn trials(&self, table: &str) -> Result<()> {
        write_bytes_atomic(&self.path(TRIALS), table.as_bytes())
    }

    /// `stimuli/ids.npy`: the sorted ids of the stimuli, one per row of the images.
    pub fn stimulus_ids(&self, ids: &[usize]) -> Result<()> {
        write_ids(&self.path(STIMULUS_IDS), ids)
    }

    /// Where `stimuli/images.npy` goes (a resumed run keeps one already written).
    pub fn images_path(&self) -> PathBuf {
        self.path(IMAGES)
    }

    /// `stimuli/images.npy` streamed image by image: uint8 (n, h, w, 3) for `size` = [h, w];
    /// write each image's h × w × 3 pixels, then `finish` the writer.
    pub fn images_rows(&self, n: usize, [h, w]: [usize; 2]) -> Result<npy::Writer<u8>> {
        npy::Writer::create(&self.images_path(), &[n, h, w, 3])
    }

    /// `stimuli/images.npy` at once: `pixels` holds n images of h × w × 3 bytes.
    pub fn images(&self, n: usize, [h, w]: [usize; 2], pixels: &[u8]) -> Result<()> {
        npy::write(&self.images_path(), &[n, h, w, 3], pixels)
    }

    /// `stimuli/captions.json`: each stimulus id's captions.
    pub fn captions(&self, captions: &BTreeMap<usize, Vec<String>>) -> Result<()> {
        // JSON keys are strings, so they sort as text ("10" before "9").
        let by_name: BTreeMap<String, &Vec<String>> =
            captions.iter().map(|(id, c)| (id.to_string(), c)).collect();
        write_json_atomic(&self.path(CAPTIONS), &by_name)
    }

    /// `subject.json`. Written last: a folder with it is a complete subject.
    pub fn meta(&self, meta: &SubjectMeta) -> Result<()> {
        write_json_atomic(&self.path(META), meta)
    }
}

fn write_ids(path: &Path, ids: &[usize]) -> Result<()> {
    let values: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    npy::write(path, &[values.len()], &values)
}

/// The stimulus images of a prepared subject, memory-mapped.
pub struct Stimuli {
    /// The sorted stimulus ids, one per image.
    pub ids: Vec<usize>,
    images: npy::MappedU8,
    /// Image size [h, w] in pixels.
    pub size: [usize; 2],
}

impl Stimuli {
    /// The image of a 73k id, if the subject has it.
    pub fn get(&self, id: usize) -> Option<brainrecon_formats::image::RgbImage> {
        let row = self.ids.binary_search(&id).ok()?;
        let [h, w] = self.size;
        Some(brainrecon_formats::image::RgbImage::new(
            h,
            w,
            self.images.entry(row).to_vec(),
        ))
    }
}
