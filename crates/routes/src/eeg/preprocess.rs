//! `brainrecon eeg preprocess`: THINGS-EEG2's raw recordings made into preprocessed files as
//! the data set's code makes them (`brainrecon_datasets::things_eeg2::preprocess_raw`), in the
//! shipped layout, so that `eeg fit` and `eeg eval` read them as they read the shipped ones.
//!
//! Writes OUT/eeg_dataset/preprocessed_data/sub-XX/preprocessed_eeg_{training,test}.npy (each
//! subject's folder replaced whole, never half-written) and links OUT/image_set to the data
//! set's image folder.

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
        true => {
            let mut found: Vec<String> = std::fs::read_dir(&set.raw)
                .map_err(|e| DataError::io(&set.raw, e))?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.starts_with("sub-"))
                .collect();
            found.sort();
            found
        }
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

/// OUT/image_set → the data set's image folder (kept when it already points there).
fn link_images(images: &Path, link: &Path) -> Result<()> {
    if std::fs::read_link(link).is_ok_and(|target| target == images) {
        return Ok(());
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
