//! `brainrecon eeg preprocess`: THINGS-EEG2's raw recordings made into preprocessed files as
//! the data set's code makes them (`brainrecon_datasets::things_eeg2::preprocess_raw`), in the
//! shipped layout, so that `eeg fit` and `eeg eval` read them as they read the shipped ones.
//!
//! Writes OUT/eeg_dataset/preprocessed_data/sub-XX/preprocessed_eeg_{training,test}.npy (each
//! subject's folder replaced whole, never half-written) and links OUT/image_set to the data
//! set's image folder. [`prepare_bids`] does the same for an image experiment in BIDS EEG,
//! writing OUT/image_set/image_metadata.npy and linking each image it names, and
//! [`prepare_meg`] for a THINGS-MEG participant's preprocessed epochs.

use std::path::{Path, PathBuf};

use crate::error::{Result, RouteError};
use brainrecon_core::fs::write_folder_atomic;
use brainrecon_core::DataError;
use brainrecon_datasets::things_eeg2::{
    preprocess_raw, write_preprocessed, PreprocessedEeg, RawPreprocessing, ThingsEeg2,
};
use serde::Serialize;

/// `brainrecon eeg preprocess`.
#[derive(Clone, Debug)]
pub struct PreprocessRequest {
    /// The THINGS-EEG2 root holding `raw_data`.
    pub data: PathBuf,
    /// Subjects to preprocess (empty: every `sub-XX` of `raw_data`).
    pub subjects: Vec<String>,
    pub out: PathBuf,
    pub options: RawPreprocessing,
}

/// One subject's result.
#[derive(Clone, Debug, Serialize)]
pub struct PreprocessedSubject {
    pub subject: String,
    /// [conditions, repetitions, channels, times].
    pub training: [usize; 4],
    pub test: [usize; 4],
    pub ch_names: Vec<String>,
}

/// What `preprocess` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct PreprocessReport {
    pub out: PathBuf,
    pub options: RawPreprocessing,
    pub subjects: Vec<PreprocessedSubject>,
    /// The image folder OUT/image_set points to, if the data set has one.
    pub images: Option<PathBuf>,
}

impl PreprocessReport {
    pub fn text(&self) -> String {
        let mut lines: Vec<String> = self
            .subjects
            .iter()
            .map(|s| {
                format!(
                    "{}: training {} conditions × {} repetitions, test {} × {}; {} channels × {} \
                     samples at {} Hz",
                    s.subject,
                    s.training[0],
                    s.training[1],
                    s.test[0],
                    s.test[1],
                    s.training[2],
                    s.training[3],
                    self.options.sfreq
                )
            })
            .collect();
        lines.push(format!("written to {}", self.out.display()));
        lines.join("\n")
    }
}

fn shape(eeg: &PreprocessedEeg) -> [usize; 4] {
    [
        eeg.conditions,
        eeg.repetitions,
        eeg.channels(),
        eeg.times.len(),
    ]
}

fn write(path: &Path, eeg: &PreprocessedEeg) -> Result<()> {
    let data: Vec<f64> = eeg.data.iter().map(|&v| v as f64).collect();
    Ok(write_preprocessed(
        path,
        &data,
        shape(eeg),
        &eeg.ch_names,
        &eeg.times,
    )?)
}

/// Preprocesses each subject (see the module documentation).
pub fn preprocess(
    request: &PreprocessRequest,
    mut each_subject: impl FnMut(&str),
) -> Result<PreprocessReport> {
    let o = &request.options;
    if !(o.sfreq.is_finite() && o.sfreq > 0.0 && o.tmin < o.tmax) {
        return Err(RouteError::Usage(format!(
            "--sfreq must be positive and the epoch non-empty, found {} Hz, {} … {} s",
            o.sfreq, o.tmin, o.tmax
        )));
    }
    let set = ThingsEeg2::open(&request.data)?;
    let subjects = match request.subjects.is_empty() {
        false => request.subjects.clone(),
        true => set.raw_subjects()?,
    };
    let root = request.out.join("eeg_dataset").join("preprocessed_data");
    std::fs::create_dir_all(&root).map_err(|e| DataError::io(&root, e))?;
    let mut done = Vec::with_capacity(subjects.len());
    for subject in &subjects {
        each_subject(subject);
        let (training, test) = preprocess_raw(&set, subject, o)?;
        write_folder_atomic(&root.join(subject), |dir| -> Result<()> {
            write(&dir.join("preprocessed_eeg_training.npy"), &training)?;
            write(&dir.join("preprocessed_eeg_test.npy"), &test)
        })?;
        done.push(PreprocessedSubject {
            subject: subject.clone(),
            training: shape(&training),
            test: shape(&test),
            ch_names: training.ch_names.clone(),
        });
    }
    let images = set
        .images
        .join("image_metadata.npy")
        .is_file()
        .then(|| std::path::absolute(&set.images).unwrap_or(set.images.clone()));
    if let Some(images) = &images {
        link_images(images, &request.out.join("image_set"))?;
    }
    Ok(PreprocessReport {
        out: request.out.clone(),
        options: o.clone(),
        subjects: done,
        images,
    })
}

/// `link` → `images` (kept when it already points there; its folder made).
fn link_images(images: &Path, link: &Path) -> Result<()> {
    if std::fs::read_link(link).is_ok_and(|target| target == images) {
        return Ok(());
    }
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    if link.exists() {
        return Err(DataError::invalid(
            link,
            "image_set",
            format!("absent, or a link to {}", images.display()),
            "another folder",
        )
        .into());
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink(images, link).map_err(|e| DataError::io(link, e))?;
    #[cfg(not(unix))]
    let _ = images;
    Ok(())
}

/// `brainrecon eeg bids-prepare`: an image experiment in BIDS EEG (a lab's own, or
/// THINGS-EEG1 as ds003825 ships it) made into THINGS-EEG2's layout.
#[derive(Clone, Debug)]
pub struct BidsEegRequest {
    pub bids_root: PathBuf,
    /// `01` or `sub-01`.
    pub subject: String,
    pub task: String,
    /// The folder holding the images the events name (by their path, or as
    /// `<concept>/<file>`); linked into OUT/image_set. None: only the metadata is written.
    pub images: Option<PathBuf>,
    pub out: PathBuf,
    pub options: RawPreprocessing,
}

/// What `bids-prepare` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct BidsEegReport {
    pub out: PathBuf,
    pub subject: String,
    pub training: [usize; 4],
    pub test: [usize; 4],
    pub ch_names: Vec<String>,
    /// How the events' onsets were read.
    pub onsets: brainrecon_datasets::bids_eeg::OnsetUnit,
    /// Epochs dropped for leaving the recording.
    pub dropped: usize,
    /// Images linked into OUT/image_set (0 without --images).
    pub images_linked: usize,
}

impl BidsEegReport {
    pub fn text(&self) -> String {
        format!(
            "{}: {} training images × {} repetitions, {} test images × {}; {} channels × {} \
             samples (onsets read as {:?}, {} epochs dropped, {} images linked): {}",
            self.subject,
            self.training[0],
            self.training[1],
            self.test[0],
            self.test[1],
            self.training[2],
            self.training[3],
            self.onsets,
            self.dropped,
            self.images_linked,
            self.out.display()
        )
    }
}

/// Links each image named by the events (`paths` of the training and test halves) from under
/// `images` (by its path, or as `<concept>/<file>`) into `image_set/{training,test}_images`;
/// `named_in` is the file that named them. Returns how many were linked.
fn link_named_images(
    images: &Path,
    paths: [&Vec<String>; 2],
    image_set: &Path,
    named_in: &Path,
    entry_of: impl Fn(&str) -> brainrecon_datasets::things_eeg2::ImageEntry,
) -> Result<usize> {
    let images = std::path::absolute(images).unwrap_or(images.to_path_buf());
    let mut linked = 0;
    for (folder, paths) in ["training_images", "test_images"].into_iter().zip(paths) {
        for path in paths {
            let entry = entry_of(path);
            let source = [
                images.join(path),
                images.join(&entry.concept).join(&entry.file),
            ]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| DataError::Missing {
                path: images.join(&entry.concept).join(&entry.file),
                what: format!("image {path} named in {}", named_in.display()),
            })?;
            let link = image_set
                .join(folder)
                .join(&entry.concept)
                .join(&entry.file);
            link_images(&source, &link)?;
            linked += 1;
        }
    }
    Ok(linked)
}

/// Prepares the run (see [`BidsEegRequest`]).
pub fn prepare_bids(request: &BidsEegRequest) -> Result<BidsEegReport> {
    use brainrecon_datasets::bids_eeg::{find_run, prepare_run};
    use brainrecon_datasets::things_eeg2::{write_image_metadata, ImageEntry, ImageMetadata};
    let run = find_run(&request.bids_root, &request.subject, &request.task)?;
    let prepared = prepare_run(&run, &request.options)?;
    let subject = format!(
        "sub-{}",
        request
            .subject
            .strip_prefix("sub-")
            .unwrap_or(&request.subject)
    );
    let metadata = ImageMetadata::from_paths(
        &prepared.training_images,
        &prepared.test_images,
        "images",
        &run.events,
        "stim",
    )?;
    let pre = request
        .out
        .join("eeg_dataset")
        .join("preprocessed_data")
        .join(&subject);
    std::fs::create_dir_all(pre.parent().expect("a parent"))
        .map_err(|e| DataError::io(&request.out, e))?;
    write_folder_atomic(&pre, |dir| -> Result<()> {
        write(
            &dir.join("preprocessed_eeg_training.npy"),
            &prepared.training,
        )?;
        write(&dir.join("preprocessed_eeg_test.npy"), &prepared.test)
    })?;
    let image_set = request.out.join("image_set");
    std::fs::create_dir_all(&image_set).map_err(|e| DataError::io(&image_set, e))?;
    write_image_metadata(&image_set.join("image_metadata.npy"), &metadata)?;
    let linked = match &request.images {
        Some(images) => link_named_images(
            images,
            [&prepared.training_images, &prepared.test_images],
            &image_set,
            &run.events,
            |p| ImageEntry::from_path(p, "images"),
        )?,
        None => 0,
    };
    Ok(BidsEegReport {
        out: request.out.clone(),
        subject,
        training: shape(&prepared.training),
        test: shape(&prepared.test),
        ch_names: prepared.training.ch_names.clone(),
        onsets: prepared.onsets,
        dropped: prepared.dropped,
        images_linked: linked,
    })
}

/// `brainrecon eeg meg-prepare`: a THINGS-MEG participant's preprocessed epochs (ds004212's
/// `derivatives/preprocessed`, MNE's FIF with its split parts) made into THINGS-EEG2's layout,
/// as `bids-prepare` does for an EEG run.
#[derive(Clone, Debug)]
pub struct MegPrepareRequest {
    /// ds004212's root, its `derivatives` or the folder of the epochs files.
    pub data: PathBuf,
    /// `P1`, `1` or `sub-BIGMEG1`.
    pub participant: String,
    /// The THINGS images' folder (the epochs' `image_path`s under it, or `<concept>/<file>`);
    /// linked into OUT/image_set. None: only the metadata is written.
    pub images: Option<PathBuf>,
    pub out: PathBuf,
    pub options: brainrecon_datasets::things_meg::MegOptions,
}

/// What `meg-prepare` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct MegPrepareReport {
    pub out: PathBuf,
    /// The subject's folder name in OUT (`sub-01` for P1).
    pub subject: String,
    pub training: [usize; 4],
    pub test: [usize; 4],
    pub ch_names: Vec<String>,
    /// Catch trials left out.
    pub catch: usize,
    /// The FIF parts read.
    pub files: Vec<PathBuf>,
    pub images_linked: usize,
}

impl MegPrepareReport {
    pub fn text(&self) -> String {
        format!(
            "{}: {} training images × {} repetitions, {} test images × {}; {} channels × {} \
             samples ({} catch trials left out, {} FIF parts read, {} images linked): {}",
            self.subject,
            self.training[0],
            self.training[1],
            self.test[0],
            self.test[1],
            self.training[2],
            self.training[3],
            self.catch,
            self.files.len(),
            self.images_linked,
            self.out.display()
        )
    }
}

/// Prepares the participant (see [`MegPrepareRequest`]).
pub fn prepare_meg(request: &MegPrepareRequest) -> Result<MegPrepareReport> {
    use brainrecon_datasets::things_meg::{
        image_entry, prepare_participant, write_things_eeg2, ThingsMeg,
    };
    let set = ThingsMeg::open(&request.data)?;
    let path = set.epochs_path(&request.participant);
    let number: String = request
        .participant
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    let subject = match number.parse::<u32>() {
        Ok(n) if path.is_file() => format!("sub-{n:02}"),
        _ => {
            return Err(DataError::Missing {
                path,
                what: format!(
                    "participant '{}' of THINGS-MEG (expected P1 … P{}; found {})",
                    request.participant,
                    set.participants()?.len(),
                    set.participants()?.join(", ")
                ),
            }
            .into())
        }
    };
    let prepared = prepare_participant(&path, &request.options)?;
    write_things_eeg2(&prepared, &request.out, &subject)?;
    let image_set = request.out.join("image_set");
    let linked = match &request.images {
        Some(images) => link_named_images(
            images,
            [&prepared.training_images, &prepared.test_images],
            &image_set,
            &path,
            image_entry,
        )?,
        None => 0,
    };
    Ok(MegPrepareReport {
        out: request.out.clone(),
        subject,
        training: shape(&prepared.training),
        test: shape(&prepared.test),
        ch_names: prepared.training.ch_names.clone(),
        catch: prepared.catch,
        files: prepared.files.clone(),
        images_linked: linked,
    })
}
