//! THINGS-EEG2 (Gifford, Dwivedi, Roig & Cichy 2022; OSF 3jk45) as it ships:
//!
//! ```text
//! <root>/eeg_dataset/preprocessed_data/sub-XX/preprocessed_eeg_training.npy
//!                                            /preprocessed_eeg_test.npy
//! <root>/eeg_dataset/raw_data/sub-XX/ses-YY/raw_eeg_training.npy, raw_eeg_test.npy
//! <root>/image_set/image_metadata.npy
//! <root>/image_set/training_images/<concept>/<file>.jpg
//! <root>/image_set/test_images/<concept>/<file>.jpg
//! ```
//!
//! Every `.npy` holds a pickled dict (`np.save(path, dict)` of NumPy 1.x), read by the
//! restricted reader of `brainrecon_formats::pickle`, which executes nothing. The preprocessed
//! dicts: `preprocessed_eeg_data` float64 [image conditions, repetitions, channels, times]
//! (training 16,540 × 4 × 17 × 100, test 200 × 80 × 17 × 100), `ch_names`, `times` (s). Image
//! condition i is entry i of `image_metadata.npy`'s `train_img_files`/`test_img_files`, whose
//! folder is the entry of `*_img_concepts` (`00001_aardvark`). The raw dicts: `raw_eeg_data`
//! float64 [channels, samples] with a `stim` channel of event codes, `ch_names`, `ch_types`,
//! `sfreq`.
//!
//! `root` may also be the `eeg_dataset` folder's parent with the preprocessed data directly
//! under it (`<root>/preprocessed_data`), as many download scripts leave it.
//!
//! NICE's and ATM's re-preprocessing (all 63 channels, 250 Hz) ships as
//! `<root>/Preprocessed_data_250Hz/sub-XX/preprocessed_eeg_{training,test}.npy`: the same dict
//! written with `pickle.dump` (protocol 4, no `.npy` header), `preprocessed_eeg_data` float64
//! [16,540 × 4 or 200 × 80, 63, 250] (0 to 1 s) and `times` the 300 times from −0.2 s that
//! their loaders slice from index 50. Both are read as they ship ([`read_preprocessed`]).

use std::path::{Path, PathBuf};

use brainrecon_formats::npy::read_pickled_item;
use brainrecon_formats::pickle::Value;

use crate::{DataError, Result};

/// Which half of the experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// 1,654 concepts × 10 images, 4 repetitions.
    Training,
    /// 200 concepts × 1 image, 80 repetitions.
    Test,
}

impl Split {
    fn stem(self) -> &'static str {
        match self {
            Split::Training => "training",
            Split::Test => "test",
        }
    }

    fn metadata_prefix(self) -> &'static str {
        match self {
            Split::Training => "train",
            Split::Test => "test",
        }
    }

    fn image_folder(self) -> &'static str {
        match self {
            Split::Training => "training_images",
            Split::Test => "test_images",
        }
    }
}

/// The `sub-*` folders in `dir`, sorted.
fn subject_folders(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut subjects: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| name.starts_with("sub-"))
        .collect();
    subjects.sort();
    Ok(subjects)
}

/// A preprocessed file: epochs per image condition and repetition.
#[derive(Clone, Debug)]
pub struct PreprocessedEeg {
    /// [conditions, repetitions, channels, times], f32 (the file's float64 rounded).
    pub data: Vec<f32>,
    /// Image conditions (16,540 training, 200 test in the shipped files).
    pub conditions: usize,
    /// Repetitions per condition (4 training, 80 test in the shipped files).
    pub repetitions: usize,
    /// Channel names, in the data's order.
    pub ch_names: Vec<String>,
    /// Seconds from image onset.
    pub times: Vec<f64>,
}

impl PreprocessedEeg {
    /// Channels: the length of `ch_names`.
    pub fn channels(&self) -> usize {
        self.ch_names.len()
    }

    /// The rate of the evenly spaced `times` in Hz (rounded to 1e-6), from the first and the
    /// last; 0 when there are fewer than two or they are not evenly spaced.
    pub fn sampling_rate(&self) -> f64 {
        let (times, n) = (&self.times, self.times.len());
        if n < 2 {
            return 0.0;
        }
        let step = (times[n - 1] - times[0]) / (n - 1) as f64;
        let even = times
            .windows(2)
            .all(|w| ((w[1] - w[0]) - step).abs() <= 1e-6 * step.abs().max(1e-12));
        match even && step > 0.0 {
            true => (1.0 / step * 1e6).round() / 1e6,
            false => 0.0,
        }
    }

    /// One epoch, [channels × times].
    pub fn epoch(&self, condition: usize, repetition: usize) -> &[f32] {
        let n = self.channels() * self.times.len();
        let start = (condition * self.repetitions + repetition) * n;
        &self.data[start..start + n]
    }

    /// A condition's epochs averaged over its repetitions (summed, then scaled by
    /// 1/repetitions), [channels × times]: what the papers decode test images from.
    pub fn condition_mean(&self, condition: usize) -> Vec<f32> {
        let mut mean = vec![0f32; self.channels() * self.times.len()];
        for r in 0..self.repetitions {
            mean.iter_mut()
                .zip(self.epoch(condition, r))
                .for_each(|(m, v)| *m += v);
        }
        let scale = 1.0 / self.repetitions as f32;
        mean.iter_mut().for_each(|m| *m *= scale);
        mean
    }

    /// Several subjects' recordings of the same conditions as one, each condition's
    /// repetitions following one another in `parts`' order: the pooled training data of a
    /// decoder across subjects (NICE's inter-subject setting). Channels, times and
    /// conditions must agree; `names` name the parts in the error.
    pub fn stack_repetitions(parts: &[PreprocessedEeg], names: &[PathBuf]) -> Result<Self> {
        let first = parts.first().ok_or_else(|| DataError::Missing {
            path: PathBuf::from("--subject"),
            what: "at least one subject to pool".into(),
        })?;
        for (part, name) in parts.iter().zip(names).skip(1) {
            let mismatch = |field: &str, expected: String, found: String| {
                Err(DataError::invalid(name, field, &expected, &found))
            };
            if part.ch_names != first.ch_names {
                return mismatch(
                    "ch_names",
                    format!("the first subject's {:?}", first.ch_names),
                    format!("{:?}", part.ch_names),
                );
            }
            if part.times != first.times || part.conditions != first.conditions {
                return mismatch(
                    "preprocessed_eeg_data",
                    format!(
                        "{} conditions × {} times, as the first subject",
                        first.conditions,
                        first.times.len()
                    ),
                    format!("{} × {}", part.conditions, part.times.len()),
                );
            }
        }
        let epoch = first.channels() * first.times.len();
        let repetitions: usize = parts.iter().map(|p| p.repetitions).sum();
        let mut data = Vec::with_capacity(first.conditions * repetitions * epoch);
        for c in 0..first.conditions {
            for part in parts {
                let block = part.repetitions * epoch;
                data.extend_from_slice(&part.data[c * block..(c + 1) * block]);
            }
        }
        Ok(PreprocessedEeg {
            data,
            conditions: first.conditions,
            repetitions,
            ch_names: first.ch_names.clone(),
            times: first.times.clone(),
        })
    }
}

/// A raw recording of one session and half.
#[derive(Clone, Debug)]
pub struct RawEeg {
    /// [channels, samples] as stored (volts; the `stim` channel holds event codes).
    pub data: Vec<f64>,
    /// Samples per channel.
    pub samples: usize,
    /// Channel names, one per row of `data` (`stim` among them).
    pub ch_names: Vec<String>,
    /// MNE channel types, one per channel (`eeg`, `stim`).
    pub ch_types: Vec<String>,
    /// Sample rate, Hz (1000 in the shipped recordings).
    pub sfreq: f64,
}

/// One image of the set.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageEntry {
    /// The folder, `00001_aardvark`.
    pub concept: String,
    /// The file in it, `aardvark_01b.jpg`.
    pub file: String,
}

/// `image_metadata.npy`: the images of each half, in the order of the EEG's conditions.
#[derive(Clone, Debug)]
pub struct ImageMetadata {
    /// The training images, in condition order.
    pub training: Vec<ImageEntry>,
    /// The test images, in condition order.
    pub test: Vec<ImageEntry>,
}

impl ImageEntry {
    /// An image path (`stimuli/carousel/carousel_11s.jpg`) as an entry: its folder is the
    /// concept; a bare file name goes in the folder `default_concept`.
    pub fn from_path(path: &str, default_concept: &str) -> Self {
        let mut parts = path.rsplit('/');
        let file = parts.next().unwrap_or(path).to_string();
        let concept = parts.next().unwrap_or(default_concept).to_string();
        ImageEntry { concept, file }
    }
}

impl ImageMetadata {
    /// The entries of the training and test images' paths (see [`ImageEntry::from_path`]),
    /// refusing a path whose folder or file would be empty, `.` or `..`: `source` and `field`
    /// name where the paths were read.
    pub fn from_paths(
        training: &[String],
        test: &[String],
        default_concept: &str,
        source: &std::path::Path,
        field: &str,
    ) -> Result<Self> {
        let entries = |paths: &[String]| -> Vec<ImageEntry> {
            paths
                .iter()
                .map(|p| ImageEntry::from_path(p, default_concept))
                .collect()
        };
        let metadata = ImageMetadata {
            training: entries(training),
            test: entries(test),
        };
        let unsafe_name = |s: &str| s.is_empty() || s == "." || s == "..";
        if let Some(bad) = metadata
            .training
            .iter()
            .chain(&metadata.test)
            .find(|e| unsafe_name(&e.concept) || unsafe_name(&e.file))
        {
            return Err(DataError::invalid(
                source,
                field,
                "image paths ending in <folder>/<file>",
                format!("{}/{}", bad.concept, bad.file),
            ));
        }
        Ok(metadata)
    }

    /// The images of `split`, in condition order.
    pub fn of(&self, split: Split) -> &[ImageEntry] {
        match split {
            Split::Training => &self.training,
            Split::Test => &self.test,
        }
    }
}

/// The names the folder of preprocessed `sub-XX` folders goes by, in the order they are looked
/// for: the data set's, and that of NICE's 250 Hz re-preprocessing as ATM's users download it.
pub const PREPROCESSED_FOLDERS: [&str; 2] = ["preprocessed_data", "Preprocessed_data_250Hz"];

/// The dataset folder.
#[derive(Clone, Debug)]
pub struct ThingsEeg2 {
    /// The folder holding `sub-XX` folders of preprocessed data.
    pub preprocessed: PathBuf,
    /// The folder holding `sub-XX/ses-YY` of raw data (it may be absent).
    pub raw: PathBuf,
    /// The folder holding `image_metadata.npy` and the image folders.
    pub images: PathBuf,
}

impl ThingsEeg2 {
    /// Finds the dataset's folders under `root` (see the module documentation).
    pub fn open(root: &Path) -> Result<Self> {
        let preprocessed_in = |d: &Path| {
            PREPROCESSED_FOLDERS
                .iter()
                .map(|name| d.join(name))
                .find(|p| p.is_dir())
        };
        let eeg = [root.join("eeg_dataset"), root.to_path_buf()]
            .into_iter()
            .find(|d| preprocessed_in(d).is_some() || d.join("raw_data").is_dir())
            .ok_or_else(|| DataError::Missing {
                path: root.join("eeg_dataset").join("preprocessed_data"),
                what: "THINGS-EEG2's preprocessed_data (or NICE's Preprocessed_data_250Hz) or \
                       raw_data folder (under eeg_dataset/ or the root)"
                    .into(),
            })?;
        let images = [root.join("image_set"), root.to_path_buf()]
            .into_iter()
            .find(|d| d.join("image_metadata.npy").is_file())
            .unwrap_or_else(|| root.join("image_set"));
        Ok(ThingsEeg2 {
            preprocessed: preprocessed_in(&eeg).unwrap_or_else(|| eeg.join("preprocessed_data")),
            raw: eeg.join("raw_data"),
            images,
        })
    }

    /// The `sub-XX` folders of preprocessed data, sorted.
    pub fn subjects(&self) -> Result<Vec<String>> {
        subject_folders(&self.preprocessed)
    }

    /// The `sub-XX` folders of raw data, sorted.
    pub fn raw_subjects(&self) -> Result<Vec<String>> {
        subject_folders(&self.raw)
    }

    /// The preprocessed file of a subject (`sub-01`) and half.
    pub fn preprocessed_path(&self, subject: &str, split: Split) -> PathBuf {
        self.preprocessed
            .join(subject)
            .join(format!("preprocessed_eeg_{}.npy", split.stem()))
    }

    /// Reads the preprocessed file of `subject` and `split` ([`read_preprocessed`]).
    pub fn read_preprocessed(&self, subject: &str, split: Split) -> Result<PreprocessedEeg> {
        read_preprocessed(&self.preprocessed_path(subject, split))
    }

    /// The raw file of a subject, session (1-based) and half.
    pub fn raw_path(&self, subject: &str, session: usize, split: Split) -> PathBuf {
        self.raw
            .join(subject)
            .join(format!("ses-{session:02}"))
            .join(format!("raw_eeg_{}.npy", split.stem()))
    }

    /// Reads the image set's `image_metadata.npy` ([`read_image_metadata`]).
    pub fn image_metadata(&self) -> Result<ImageMetadata> {
        read_image_metadata(&self.images.join("image_metadata.npy"))
    }

    /// Where an image of a half lies.
    pub fn image_path(&self, split: Split, entry: &ImageEntry) -> PathBuf {
        self.images
            .join(split.image_folder())
            .join(&entry.concept)
            .join(&entry.file)
    }

    /// The image paths of a half, in condition order; an image missing from its concept's
    /// folder is an error naming both.
    pub fn image_paths(&self, metadata: &ImageMetadata, split: Split) -> Result<Vec<PathBuf>> {
        metadata
            .of(split)
            .iter()
            .map(|entry| {
                let path = self.image_path(split, entry);
                match path.is_file() {
                    true => Ok(path),
                    false => Err(DataError::Missing {
                        path,
                        what: format!(
                            "image {} of concept {} (listed in {})",
                            entry.file,
                            entry.concept,
                            self.images.join("image_metadata.npy").display()
                        ),
                    }),
                }
            })
            .collect()
    }
}

/// The entry of a pickled dict, or an error naming the keys there are.
fn entry<'a>(path: &Path, dict: &'a Value, key: &str) -> Result<&'a Value> {
    if !matches!(dict, Value::Dict(_)) {
        return Err(DataError::invalid(
            path,
            "pickled object",
            "a dict",
            dict.kind(),
        ));
    }
    dict.get(key).ok_or_else(|| {
        DataError::invalid(
            path,
            format!("key '{key}'"),
            "present",
            format!("keys {:?}", dict.keys()),
        )
    })
}

/// A list of strings, or a string array (NumPy `<U`/object), sized before it is copied (see
/// [`Value::to_strings`]).
fn strings(path: &Path, key: &str, value: &Value) -> Result<Vec<String>> {
    value
        .to_strings()
        .map_err(|found| DataError::invalid(path, key, "a list of strings", found))
}

/// A 1-D numeric array or a list of numbers, as f64.
fn numbers(path: &Path, key: &str, value: &Value) -> Result<Vec<f64>> {
    match value {
        Value::Array(a) if a.shape.len() == 1 => a
            .to_f64()
            .map_err(|found| DataError::invalid(path, key, "numbers", found)),
        Value::List(items) => items
            .iter()
            .map(|v| match v {
                Value::Float(x) => Ok(*x),
                Value::Int(i) => Ok(*i as f64),
                other => Err(DataError::invalid(
                    path,
                    key,
                    "numbers",
                    format!("a list holding {}", other.kind()),
                )),
            })
            .collect(),
        other => Err(DataError::invalid(
            path,
            key,
            "a 1-D array of numbers",
            other.kind(),
        )),
    }
}

fn number(path: &Path, key: &str, value: &Value) -> Result<f64> {
    match value {
        Value::Float(x) => Ok(*x),
        Value::Int(i) => Ok(*i as f64),
        Value::Array(a) if a.len() == 1 => a
            .to_f64()
            .map(|v| v[0])
            .map_err(|found| DataError::invalid(path, key, "a number", found)),
        other => Err(DataError::invalid(path, key, "a number", other.kind())),
    }
}

/// Reads a preprocessed file (see the module documentation), as the data set ships it
/// (`np.save` of the dict) or as NICE and ATM ship theirs (`pickle.dump` of the same dict,
/// without a `.npy` header). Non-finite values and shapes that disagree with `ch_names` or
/// `times` are errors naming the file and the key.
///
/// `times` may list more entries than the epochs hold samples when the epochs were cropped
/// after the times were taken: NICE's 250 Hz files hold 250 samples from 0 s and the 300
/// times from −0.2 s, which their loaders slice (`times[50:]`). The last `samples` times are
/// kept then, provided they start at the image's onset (0 s, within half a sample).
pub fn read_preprocessed(path: &Path) -> Result<PreprocessedEeg> {
    let dict = read_pickled_item(path)?;
    let ch_names = strings(path, "ch_names", entry(path, &dict, "ch_names")?)?;
    let mut times = numbers(path, "times", entry(path, &dict, "times")?)?;
    let key = "preprocessed_eeg_data";
    let Value::Array(array) = entry(path, &dict, key)? else {
        let found = entry(path, &dict, key)?.kind();
        return Err(DataError::invalid(path, key, "a float array", found));
    };
    let shape = array.shape.clone();
    if shape.len() == 4 && times.len() > shape[3] && shape[3] >= 2 {
        let kept = &times[times.len() - shape[3]..];
        let step = kept[1] - kept[0];
        if step > 0.0 && kept[0].abs() <= step / 2.0 {
            times = kept.to_vec();
        }
    }
    let want = format!(
        "[image conditions, repetitions, {} channels (ch_names), {} times (times)]",
        ch_names.len(),
        times.len()
    );
    if shape.len() != 4
        || shape[2] != ch_names.len()
        || shape[3] != times.len()
        || shape[..2].contains(&0)
    {
        return Err(DataError::invalid(
            path,
            key,
            want,
            format!("shape {shape:?}"),
        ));
    }
    // Straight to f32: NICE's training file is 8.3 GB of float64 already in memory.
    let values = array
        .to_f32()
        .map_err(|found| DataError::invalid(path, key, "a float array", found))?;
    if let Some(at) = values.iter().position(|v| !v.is_finite()) {
        let per = shape[1] * shape[2] * shape[3];
        return Err(DataError::invalid(
            path,
            key,
            "finite values (within float32's range)",
            format!(
                "{} in image condition {}, repetition {}",
                values[at],
                at / per,
                at % per / (shape[2] * shape[3])
            ),
        ));
    }
    Ok(PreprocessedEeg {
        data: values,
        conditions: shape[0],
        repetitions: shape[1],
        ch_names,
        times,
    })
}

/// Reads a raw file (see the module documentation).
pub fn read_raw(path: &Path) -> Result<RawEeg> {
    let dict = read_pickled_item(path)?;
    let ch_names = strings(path, "ch_names", entry(path, &dict, "ch_names")?)?;
    let ch_types = strings(path, "ch_types", entry(path, &dict, "ch_types")?)?;
    let sfreq = number(path, "sfreq", entry(path, &dict, "sfreq")?)?;
    let sfreq = brainrecon_core::limits::sample_rate(path, "sfreq", sfreq)?;
    if ch_types.len() != ch_names.len() {
        return Err(DataError::invalid(
            path,
            "ch_types",
            format!("one type for each of the {} ch_names", ch_names.len()),
            format!("{} types", ch_types.len()),
        ));
    }
    let key = "raw_eeg_data";
    let Value::Array(array) = entry(path, &dict, key)? else {
        let found = entry(path, &dict, key)?.kind();
        return Err(DataError::invalid(path, key, "a float array", found));
    };
    if array.shape.len() != 2 || array.shape[0] != ch_names.len() {
        return Err(DataError::invalid(
            path,
            key,
            format!("[{} channels (ch_names), samples]", ch_names.len()),
            format!("shape {:?}", array.shape),
        ));
    }
    let data = array
        .to_f64()
        .map_err(|found| DataError::invalid(path, key, "a float array", found))?;
    Ok(RawEeg {
        samples: array.shape[1],
        data,
        ch_names,
        ch_types,
        sfreq,
    })
}

/// Reads `image_metadata.npy`: per half, the files and their concepts, of equal length.
pub fn read_image_metadata(path: &Path) -> Result<ImageMetadata> {
    let dict = read_pickled_item(path)?;
    let half = |split: Split| -> Result<Vec<ImageEntry>> {
        let prefix = split.metadata_prefix();
        let files_key = format!("{prefix}_img_files");
        let concepts_key = format!("{prefix}_img_concepts");
        let files = strings(path, &files_key, entry(path, &dict, &files_key)?)?;
        let concepts = strings(path, &concepts_key, entry(path, &dict, &concepts_key)?)?;
        if files.len() != concepts.len() {
            return Err(DataError::invalid(
                path,
                concepts_key,
                format!("one concept for each of the {} {files_key}", files.len()),
                format!("{} concepts", concepts.len()),
            ));
        }
        let unsafe_name =
            |s: &String| s.is_empty() || s.contains(['/', '\\']) || s == ".." || s == ".";
        if let Some(bad) = files.iter().chain(&concepts).find(|s| unsafe_name(s)) {
            return Err(DataError::invalid(
                path,
                files_key,
                "plain file and folder names",
                format!("'{bad}'"),
            ));
        }
        Ok(files
            .into_iter()
            .zip(concepts)
            .map(|(file, concept)| ImageEntry { concept, file })
            .collect())
    };
    Ok(ImageMetadata {
        training: half(Split::Training)?,
        test: half(Split::Test)?,
    })
}

/// Writes a preprocessed file as the data set's code does (`np.save` of the dict):
/// `preprocessed_eeg_data` float64 `shape` [conditions, repetitions, channels, times],
/// `ch_names`, `times`.
pub fn write_preprocessed(
    path: &Path,
    data: &[f64],
    shape: [usize; 4],
    ch_names: &[String],
    times: &[f64],
) -> Result<()> {
    use brainrecon_formats::pickle::NdArray;
    assert_eq!(data.len(), shape.iter().product::<usize>());
    let key = |k: &str| Value::Str(k.into());
    let dict = Value::Dict(
        vec![
            (
                key("preprocessed_eeg_data"),
                Value::Array(NdArray::from_f64(shape.to_vec(), data).into()),
            ),
            (
                key("ch_names"),
                Value::List(
                    ch_names
                        .iter()
                        .map(|s| Value::Str(s.as_str().into()))
                        .collect::<Vec<_>>()
                        .into(),
                ),
            ),
            (
                key("times"),
                Value::Array(NdArray::from_f64(vec![times.len()], times).into()),
            ),
        ]
        .into(),
    );
    brainrecon_formats::npy::write_pickled(path, dict)
}

/// Which channels the preprocessing keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelSelection {
    /// Names starting with O or P (the data set's regular expression `^O *|^P *`): the 17
    /// occipital and parietal channels of the shipped preprocessed files.
    OccipitalParietal,
    /// Every EEG channel (NICE's 63).
    All,
}

impl ChannelSelection {
    /// Every selection, in the order `--channels` lists them.
    pub const ALL: [ChannelSelection; 2] =
        [ChannelSelection::OccipitalParietal, ChannelSelection::All];

    /// The name on the command line (and in the settings' JSON).
    pub fn name(self) -> &'static str {
        match self {
            ChannelSelection::OccipitalParietal => "occipital-parietal",
            ChannelSelection::All => "all",
        }
    }

    /// Whether the channel `name` is kept.
    pub fn keeps(self, name: &str) -> bool {
        match self {
            ChannelSelection::All => true,
            ChannelSelection::OccipitalParietal => name.starts_with('O') || name.starts_with('P'),
        }
    }
}

impl std::str::FromStr for ChannelSelection {
    type Err = String;

    /// `occipital-parietal` or `all`.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == text)
            .ok_or_else(|| format!("expected occipital-parietal or all, found '{text}'"))
    }
}

/// How raw recordings become preprocessed epochs (defaults: the data set's own settings).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RawPreprocessing {
    /// The epochs' sampling rate after resampling (100 Hz shipped; NICE uses 250).
    pub sfreq: f64,
    /// Epoch start relative to image onset, seconds (−0.2).
    pub tmin: f64,
    /// Epoch end relative to image onset, seconds (0.8).
    pub tmax: f64,
    /// Which channels are kept.
    pub channels: ChannelSelection,
    /// Multivariate noise normalisation, per session; None leaves it out.
    pub mvnn: Option<crate::eeg_preprocess::MvnnDim>,
}

impl Default for RawPreprocessing {
    fn default() -> Self {
        RawPreprocessing {
            sfreq: 100.0,
            tmin: -0.2,
            tmax: 0.8,
            channels: ChannelSelection::OccipitalParietal,
            mvnn: Some(crate::eeg_preprocess::MvnnDim::Time),
        }
    }
}

/// The event code the data set gives its target (catch) trials, which are left out.
pub const TARGET_CODE: i64 = 99999;

/// One half of one session, epoched and resampled: the epochs [channels × times] of each
/// event code, in recording order.
struct SessionHalf {
    path: PathBuf,
    by_code: std::collections::BTreeMap<i64, Vec<Vec<f64>>>,
}

/// Epochs one raw file: the stim channel's events (targets left out), the selected channels,
/// baseline, resampling. Returns the half and the channel names kept.
fn epoch_raw(
    path: &Path,
    options: &RawPreprocessing,
) -> Result<(SessionHalf, Vec<String>, Vec<f64>)> {
    use crate::eeg_preprocess::{find_events, Epocher};
    let raw = read_raw(path)?;
    let samples = raw.samples;
    let stim = raw
        .ch_types
        .iter()
        .position(|t| t == "stim")
        .ok_or_else(|| DataError::invalid(path, "ch_types", "a 'stim' channel", "none"))?;
    let picks: Vec<usize> = (0..raw.ch_names.len())
        .filter(|&c| c != stim && raw.ch_types[c] == "eeg")
        .filter(|&c| options.channels.keeps(&raw.ch_names[c]))
        .collect();
    if picks.is_empty() {
        return Err(DataError::invalid(
            path,
            "ch_names",
            format!("EEG channels to keep ({:?})", options.channels),
            "none",
        ));
    }
    let names = picks.iter().map(|&c| raw.ch_names[c].clone()).collect();
    let stim_row = &raw.data[stim * samples..(stim + 1) * samples];
    if options.sfreq > raw.sfreq {
        return Err(DataError::invalid(
            path,
            "sfreq",
            format!(
                "at least the epochs' rate, {} Hz (resampling only lowers it)",
                options.sfreq
            ),
            raw.sfreq.to_string(),
        ));
    }
    let epocher = Epocher::checked(
        path,
        "sfreq",
        options.tmin,
        options.tmax,
        raw.sfreq,
        options.sfreq,
    )?;
    if epocher.span_len() == 0 || epocher.span_len() > samples {
        return Err(DataError::invalid(
            path,
            "raw_eeg_data",
            format!(
                "a recording longer than one epoch ({} to {} s at {} Hz)",
                options.tmin, options.tmax, raw.sfreq
            ),
            format!("{samples} samples"),
        ));
    }
    let mut by_code: std::collections::BTreeMap<i64, Vec<Vec<f64>>> = Default::default();
    for (onset, code) in find_events(stim_row) {
        if code == TARGET_CODE {
            continue;
        }
        if let Some(x) = epocher.epoch(&raw.data, samples, &picks, onset) {
            by_code.entry(code).or_default().push(x);
        }
    }
    let times = epocher.times;
    Ok((
        SessionHalf {
            path: path.to_path_buf(),
            by_code,
        },
        names,
        times,
    ))
}

/// Preprocesses a subject's raw sessions as the data set's code does (see
/// [`RawPreprocessing`]): per session and half, events, epochs, baseline and resampling; per
/// session, MVNN from the covariances of both halves; then the sessions merged, each
/// condition's repetitions in session and recording order. Returns (training, test).
///
/// Where the data set's code shuffles the repetitions (seed 20200220, scikit-learn's
/// `shuffle`), they stay in recording order here: condition means and covariances do not
/// change.
pub fn preprocess_raw(
    set: &ThingsEeg2,
    subject: &str,
    options: &RawPreprocessing,
) -> Result<(PreprocessedEeg, PreprocessedEeg)> {
    use crate::eeg_preprocess::mvnn_in_place;
    let dir = set.raw.join(subject);
    let mut sessions: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| DataError::io(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("ses-"))
        })
        .collect();
    sessions.sort();
    if sessions.is_empty() {
        return Err(DataError::Missing {
            path: dir.join("ses-01"),
            what: "the subject's raw sessions (ses-XX/raw_eeg_*.npy)".into(),
        });
    }
    let mut halves: [Vec<SessionHalf>; 2] = [Vec::new(), Vec::new()];
    let mut layout: Option<(Vec<String>, Vec<f64>)> = None;
    for session in &sessions {
        let mut pair = Vec::with_capacity(2);
        for split in [Split::Training, Split::Test] {
            let path = session.join(format!("raw_eeg_{}.npy", split.stem()));
            let (half, names, times) = epoch_raw(&path, options)?;
            match &layout {
                None => layout = Some((names, times)),
                Some((n, t)) if *n != names || t.len() != times.len() => {
                    return Err(DataError::invalid(
                        &path,
                        "ch_names",
                        format!("the channels of the first session ({})", n.join(",")),
                        names.join(","),
                    ))
                }
                Some(_) => {}
            }
            pair.push(half);
        }
        let (names, times) = layout.as_ref().expect("set above");
        let (c, t) = (names.len(), times.len());
        if let Some(dim) = options.mvnn {
            if let Some(half) = pair.iter().find(|h| h.by_code.is_empty()) {
                return Err(DataError::invalid(
                    &half.path,
                    "raw_eeg_data",
                    "image events on the stim channel",
                    "none inside the recording",
                ));
            }
            let [training, test] = &mut pair[..] else {
                unreachable!("two halves per session")
            };
            if !mvnn_in_place(&mut [&mut training.by_code, &mut test.by_code], c, t, dim) {
                return Err(DataError::invalid(
                    &training.path,
                    "raw_eeg_data",
                    "a positive-definite noise covariance for MVNN",
                    format!(
                        "a singular one over this file and {} (a flat or duplicated channel?)",
                        test.path.display()
                    ),
                ));
            }
        }
        let test = pair.pop().expect("two halves");
        let training = pair.pop().expect("two halves");
        halves[0].push(training);
        halves[1].push(test);
    }
    let (ch_names, times) = layout.expect("at least one session");
    let merge = |parts: &[SessionHalf]| -> Result<PreprocessedEeg> {
        let mut codes: Vec<i64> = parts
            .iter()
            .flat_map(|h| h.by_code.keys().copied())
            .collect();
        codes.sort_unstable();
        codes.dedup();
        let first = &parts[0].path;
        if codes
            .iter()
            .enumerate()
            .any(|(i, &code)| code != i as i64 + 1)
        {
            return Err(DataError::invalid(
                first,
                "stim",
                "image condition codes 1 … N, each image once",
                format!(
                    "{} codes from {:?} to {:?}",
                    codes.len(),
                    codes.first(),
                    codes.last()
                ),
            ));
        }
        let count = |code: i64| -> usize {
            parts
                .iter()
                .map(|h| h.by_code.get(&code).map_or(0, Vec::len))
                .sum()
        };
        let repetitions = count(1);
        if let Some(&code) = codes.iter().find(|&&code| count(code) != repetitions) {
            return Err(DataError::invalid(
                first,
                "stim",
                format!("{repetitions} repetitions of every image condition, as condition 1"),
                format!("{} of condition {code}", count(code)),
            ));
        }
        let mut data = Vec::with_capacity(codes.len() * repetitions * ch_names.len() * times.len());
        for code in &codes {
            for half in parts {
                for x in half.by_code.get(code).into_iter().flatten() {
                    data.extend(x.iter().map(|&v| v as f32));
                }
            }
        }
        Ok(PreprocessedEeg {
            data,
            conditions: codes.len(),
            repetitions,
            ch_names: ch_names.clone(),
            times: times.clone(),
        })
    };
    Ok((merge(&halves[0])?, merge(&halves[1])?))
}

/// Writes `image_metadata.npy` as the data set ships it: `{train,test}_img_files`,
/// `{train,test}_img_concepts` and `{train,test}_img_concepts_THINGS` (the same folders).
pub fn write_image_metadata(path: &Path, metadata: &ImageMetadata) -> Result<()> {
    let strings = |items: Vec<String>| {
        Value::List(
            items
                .into_iter()
                .map(|s| Value::Str(s.into()))
                .collect::<Vec<_>>()
                .into(),
        )
    };
    let mut dict = Vec::new();
    for split in [Split::Training, Split::Test] {
        let prefix = split.metadata_prefix();
        let entries = metadata.of(split);
        let concepts = || entries.iter().map(|e| e.concept.clone()).collect();
        dict.push((
            Value::Str(format!("{prefix}_img_files").into()),
            strings(entries.iter().map(|e| e.file.clone()).collect()),
        ));
        dict.push((
            Value::Str(format!("{prefix}_img_concepts").into()),
            strings(concepts()),
        ));
        dict.push((
            Value::Str(format!("{prefix}_img_concepts_THINGS").into()),
            strings(concepts()),
        ));
    }
    brainrecon_formats::npy::write_pickled(path, Value::Dict(dict.into()))
}
