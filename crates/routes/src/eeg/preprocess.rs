//! `brainrecon eeg preprocess`: THINGS-EEG2's raw recordings made into preprocessed files as
//! the data set's code makes them (`brainrecon_datasets::things_eeg2::preprocess_raw`), in the
//! shipped layout, so that `eeg fit` and `eeg eval` read them as they read the shipped ones.
//!
//! Writes OUT/eeg_dataset/preprocessed_data/sub-XX/preprocessed_eeg_{training,test}.npy (each
//! subject's folder replaced whole, never half-written) and links OUT/image_set to the data
//! set's image folder. Inputs are checked before anything is created; a new (or empty) OUT is
//! written through [`OutputDir`] (staged, committed at the end), so a failure leaves no OUT;
//! an OUT holding earlier subjects keeps them (`write_out`). [`prepare_bids`] does the same for an image experiment in BIDS EEG,
//! writing OUT/image_set/image_metadata.npy and linking each image it names, and
//! [`prepare_meg`] for a THINGS-MEG participant's preprocessed epochs.

use std::path::{Path, PathBuf};

use crate::error::{Result, RouteError};
use brainrecon_core::fs::{write_folder_atomic, OutputDir};
use brainrecon_core::DataError;
use brainrecon_datasets::eeg_preprocess::MvnnDim;
use brainrecon_datasets::things_eeg2::{
    preprocess_raw, write_preprocessed, PreprocessedEeg, RawPreprocessing, ThingsEeg2,
};
use serde::Serialize;

/// Multivariate noise normalisation, as `--mvnn` names it: over which dimension its
/// covariances are estimated, or none ([`RawPreprocessing::mvnn`] takes [`Mvnn::dim`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mvnn {
    /// Across repetitions at each time point (the data set's default).
    Time,
    /// Across time points in each repetition.
    Epochs,
    /// No normalisation (`none`).
    Off,
}

impl Mvnn {
    /// Every choice, in the order `--mvnn` lists them.
    pub const ALL: [Mvnn; 3] = [Mvnn::Time, Mvnn::Epochs, Mvnn::Off];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mvnn::Time => "time",
            Mvnn::Epochs => "epochs",
            Mvnn::Off => "none",
        }
    }

    /// The dimension MVNN runs over; `None` leaves it out.
    pub fn dim(self) -> Option<MvnnDim> {
        match self {
            Mvnn::Time => Some(MvnnDim::Time),
            Mvnn::Epochs => Some(MvnnDim::Epochs),
            Mvnn::Off => None,
        }
    }
}

impl std::str::FromStr for Mvnn {
    type Err = String;

    /// `time`, `epochs` or `none`.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == text)
            .ok_or_else(|| format!("expected time, epochs or none, found '{text}'"))
    }
}

/// `brainrecon eeg preprocess`.
#[derive(Clone, Debug)]
pub struct PreprocessRequest {
    /// The THINGS-EEG2 root holding `raw_data`.
    pub data: PathBuf,
    /// Subjects to preprocess (empty: every `sub-XX` of `raw_data`).
    pub subjects: Vec<String>,
    /// The THINGS-EEG2 layout to write (`eeg_dataset/preprocessed_data/sub-XX/`).
    pub out: PathBuf,
    /// Resampling rate (Hz), epoch window (s), channels and MVNN.
    pub options: RawPreprocessing,
}

/// One subject's result.
#[derive(Clone, Debug, Serialize)]
pub struct PreprocessedSubject {
    /// The subject (`sub-XX`).
    pub subject: String,
    /// [conditions, repetitions, channels, times].
    pub training: [usize; 4],
    /// [conditions, repetitions, channels, times] of the test half.
    pub test: [usize; 4],
    /// The channels kept, in order.
    pub ch_names: Vec<String>,
}

/// What `preprocess` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct PreprocessReport {
    /// The layout written.
    pub out: PathBuf,
    /// The preprocessing applied.
    pub options: RawPreprocessing,
    /// One per subject, in order.
    pub subjects: Vec<PreprocessedSubject>,
    /// The image folder OUT/image_set points to, if the data set has one.
    pub images: Option<PathBuf>,
}

impl PreprocessReport {
    /// One line per subject and the folder written, for people.
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
    // Every subject's raw folder, before anything is written.
    for subject in &subjects {
        let dir = set.raw.join(subject);
        if !dir.is_dir() {
            return Err(DataError::Missing {
                path: dir,
                what: format!("subject {subject}'s raw recordings (ses-XX/raw_eeg_*.npy)"),
            }
            .into());
        }
    }
    let images = set
        .images
        .join("image_metadata.npy")
        .is_file()
        .then(|| std::path::absolute(&set.images).unwrap_or(set.images.clone()));
    if let Some(images) = &images {
        check_link(images, &request.out.join("image_set"))?;
    }
    let done = write_out(&request.out, |out| -> Result<Vec<PreprocessedSubject>> {
        let root = out.join("eeg_dataset").join("preprocessed_data");
        let mut done = Vec::with_capacity(subjects.len());
        for subject in &subjects {
            each_subject(subject);
            let (training, test) = preprocess_raw(&set, subject, o)?;
            write_subject(&root.join(subject), &training, &test)?;
            done.push(PreprocessedSubject {
                subject: subject.clone(),
                training: shape(&training),
                test: shape(&test),
                ch_names: training.ch_names.clone(),
            });
        }
        if let Some(images) = &images {
            link_images(images, &out.join("image_set"))?;
        }
        Ok(done)
    })?;
    Ok(PreprocessReport {
        out: request.out.clone(),
        options: o.clone(),
        subjects: done,
        images,
    })
}

/// Runs `write` on the folder the outputs go to, so that a failure leaves no new output:
///
/// - a new `out` (absent, or an empty folder) is staged through [`OutputDir`] in
///   `<out>.partial` and committed when `write` succeeds, removed when it fails;
/// - an `out` that holds something (subjects prepared before) is written in place, each
///   subject's folder replaced whole ([`write_subject`]), so the others are kept; nothing is
///   made in it before a subject's data are complete.
fn write_out<T>(out: &Path, write: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let fresh = !out.exists()
        || (out.is_dir()
            && std::fs::read_dir(out)
                .map_err(|e| DataError::io(out, e))?
                .next()
                .is_none());
    match fresh {
        true => OutputDir::create(out)?.run(write),
        false => write(out),
    }
}

/// One subject's folder of both halves, replaced whole (staged beside it, then renamed).
fn write_subject(dir: &Path, training: &PreprocessedEeg, test: &PreprocessedEeg) -> Result<()> {
    write_folder_atomic(dir, |staged| -> Result<()> {
        write(&staged.join("preprocessed_eeg_training.npy"), training)?;
        write(&staged.join("preprocessed_eeg_test.npy"), test)
    })
}

/// Refuses a `link` that is there and is not a link to `images` (checked before anything is
/// written; [`link_images`] makes it).
fn check_link(images: &Path, link: &Path) -> Result<()> {
    let points_there = std::fs::read_link(link).is_ok_and(|target| target == images);
    if link.symlink_metadata().is_ok() && !points_there {
        return Err(DataError::invalid(
            link,
            "image_set",
            format!("absent, or a link to {}", images.display()),
            "another file or folder",
        )
        .into());
    }
    Ok(())
}

/// `link` → `images` (kept when it already points there; its folder made).
fn link_images(images: &Path, link: &Path) -> Result<()> {
    if std::fs::read_link(link).is_ok_and(|target| target == images) {
        return Ok(());
    }
    check_link(images, link)?;
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
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
    /// The BIDS data set's root.
    pub bids_root: PathBuf,
    /// `01` or `sub-01`.
    pub subject: String,
    /// The BIDS task whose runs are read (`task-<task>`).
    pub task: String,
    /// The folder holding the images the events name (by their path, or as
    /// `<concept>/<file>`); linked into OUT/image_set. None: only the metadata is written.
    pub images: Option<PathBuf>,
    /// The THINGS-EEG2 layout to write.
    pub out: PathBuf,
    /// Resampling rate (Hz), epoch window (s), channels and MVNN.
    pub options: RawPreprocessing,
}

/// What `bids-prepare` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct BidsEegReport {
    /// The layout written.
    pub out: PathBuf,
    /// The subject's folder name in it.
    pub subject: String,
    /// [images, repetitions, channels, times] of the training half.
    pub training: [usize; 4],
    /// [images, repetitions, channels, times] of the test half.
    pub test: [usize; 4],
    /// The channels kept, in order.
    pub ch_names: Vec<String>,
    /// How the events' onsets were read.
    pub onsets: brainrecon_datasets::bids_eeg::OnsetUnit,
    /// Epochs dropped for leaving the recording.
    pub dropped: usize,
    /// Images linked into OUT/image_set (0 without --images).
    pub images_linked: usize,
}

impl BidsEegReport {
    /// What was written, in one line for people.
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

/// The links to make for each image named by the events (`paths` of the training and test
/// halves), found under `images` (by its path, or as `<concept>/<file>`): (image, link
/// relative to `image_set`, in `{training,test}_images/<concept>/<file>`). `named_in` is the
/// file that named them. Errors (a missing image; a link already there to another file under
/// `out_image_set`, the image_set of an existing output) come before anything is written.
fn plan_image_links(
    images: &Path,
    paths: [&Vec<String>; 2],
    out_image_set: &Path,
    named_in: &Path,
    entry_of: impl Fn(&str) -> brainrecon_datasets::things_eeg2::ImageEntry,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let images = std::path::absolute(images).unwrap_or(images.to_path_buf());
    let mut plan = Vec::new();
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
            let link = Path::new(folder).join(&entry.concept).join(&entry.file);
            check_link(&source, &out_image_set.join(&link))?;
            plan.push((source, link));
        }
    }
    Ok(plan)
}

/// Makes the links of [`plan_image_links`] under `image_set`; returns how many.
fn make_image_links(plan: &[(PathBuf, PathBuf)], image_set: &Path) -> Result<usize> {
    for (source, link) in plan {
        link_images(source, &image_set.join(link))?;
    }
    Ok(plan.len())
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
    // Every image found before anything is written.
    let links = match &request.images {
        Some(images) => plan_image_links(
            images,
            [&prepared.training_images, &prepared.test_images],
            &request.out.join("image_set"),
            &run.events,
            |p| ImageEntry::from_path(p, "images"),
        )?,
        None => Vec::new(),
    };
    let linked = write_out(&request.out, |out| -> Result<usize> {
        let pre = out.join("eeg_dataset").join("preprocessed_data");
        write_subject(&pre.join(&subject), &prepared.training, &prepared.test)?;
        let image_set = out.join("image_set");
        std::fs::create_dir_all(&image_set).map_err(|e| DataError::io(&image_set, e))?;
        write_image_metadata(&image_set.join("image_metadata.npy"), &metadata)?;
        make_image_links(&links, &image_set)
    })?;
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
/// as `bids-prepare` does for an EEG run, without the training trials of test concepts
/// (zero-shot: [`brainrecon_datasets::things_meg`]).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct MegPrepareRequest {
    /// ds004212's root, its `derivatives` or the folder of the epochs files.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "ds004212's root (or its derivatives/preprocessed folder)"
        )
    )]
    pub data: PathBuf,
    /// `P1`, `1` or `sub-BIGMEG1`.
    #[cfg_attr(
        feature = "cli",
        arg(long, help = "The participant (P1, 1 or sub-BIGMEG1)")
    )]
    pub participant: String,
    /// The THINGS images' folder (the epochs' `image_path`s under it, or `<concept>/<file>`);
    /// linked into OUT/image_set. None: only the metadata is written.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "The THINGS images' folder (the epochs' image paths are read under it)"
        )
    )]
    pub images: Option<PathBuf>,
    /// The THINGS-EEG2 layout to write.
    #[cfg_attr(feature = "cli", arg(long, help = "Where to write the data set"))]
    pub out: PathBuf,
    /// Which channels and samples are kept.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub options: brainrecon_datasets::things_meg::MegOptions,
}

/// What `meg-prepare` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct MegPrepareReport {
    /// The layout written.
    pub out: PathBuf,
    /// The subject's folder name in OUT (`sub-01` for P1).
    pub subject: String,
    /// [images, repetitions, channels, times] of the training half.
    pub training: [usize; 4],
    /// [images, repetitions, channels, times] of the test half.
    pub test: [usize; 4],
    /// The channels kept, in order.
    pub ch_names: Vec<String>,
    /// Catch trials left out.
    pub catch: usize,
    /// Training trials left out because their image's concept is a test concept (zero-shot,
    /// as ATM trains), their images, and the test concepts training had shown.
    pub dropped_training_trials: usize,
    /// Training images left out with them.
    pub dropped_training_images: usize,
    /// Test concepts the training trials had shown.
    pub shared_concepts: usize,
    /// Up to 10 of those concepts.
    pub shared_concept_examples: Vec<String>,
    /// Images whose concept their names do not tell (known by number only): not checked.
    pub unknown_concepts: usize,
    /// The FIF parts read.
    pub files: Vec<PathBuf>,
    /// Images linked into OUT/image_set (0 without `images`).
    pub images_linked: usize,
}

impl MegPrepareReport {
    /// What was written, in one line for people.
    pub fn text(&self) -> String {
        let unknown = match self.unknown_concepts {
            0 => String::new(),
            n => format!(", {n} images of unknown concept not checked"),
        };
        format!(
            "{}: {} training images × {} repetitions, {} test images × {}; {} channels × {} \
             samples ({} catch trials left out; {} training trials of {} images dropped for \
             showing {} test concepts, zero-shot{unknown}; {} FIF parts read, {} images \
             linked): {}",
            self.subject,
            self.training[0],
            self.training[1],
            self.test[0],
            self.test[1],
            self.training[2],
            self.training[3],
            self.catch,
            self.dropped_training_trials,
            self.dropped_training_images,
            self.shared_concepts,
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
    // Every image found before anything is written.
    let links = match &request.images {
        Some(images) => plan_image_links(
            images,
            [&prepared.training_images, &prepared.test_images],
            &request.out.join("image_set"),
            &path,
            image_entry,
        )?,
        None => Vec::new(),
    };
    let linked = write_out(&request.out, |out| -> Result<usize> {
        write_things_eeg2(&prepared, out, &subject)?;
        make_image_links(&links, &out.join("image_set"))
    })?;
    Ok(MegPrepareReport {
        out: request.out.clone(),
        subject,
        training: shape(&prepared.training),
        test: shape(&prepared.test),
        ch_names: prepared.training.ch_names.clone(),
        catch: prepared.catch,
        dropped_training_trials: prepared.dropped_trials,
        dropped_training_images: prepared.dropped_training.len(),
        shared_concepts: prepared.shared_concepts.len(),
        shared_concept_examples: prepared.shared_concepts.iter().take(10).cloned().collect(),
        unknown_concepts: prepared.unknown_concepts,
        files: prepared.files.clone(),
        images_linked: linked,
    })
}
