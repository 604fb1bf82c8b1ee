//! THINGS-MEG (Hebart, Contier, Teichmann et al. 2023; OpenNeuro ds004212) as its derivatives
//! ship, and its conversion into THINGS-EEG2's layout so the EEG route reads it:
//!
//! ```text
//! <root>/derivatives/preprocessed/preprocessed_P{1..4}-epo.fif    (+ -epo-1.fif … -epo-3.fif)
//! ```
//!
//! Each participant's file is MNE epochs read by [`brainrecon_formats::fif`]: 271 CTF axial
//! gradiometers (`picks='mag'`, one broken channel dropped), −100 to 1,300 ms at 200 Hz (281
//! samples), band-passed 0.1–40 Hz and z-scored per epoch against the baseline, all 12 sessions
//! in one (ViCCo-Group/THINGS-data, `MEG/step1_preprocessing.py`).
//!
//! - **The image** of an epoch: its metadata's `image_path` (the metadata is
//!   `sourcedata/sample_attributes_P{n}.csv`, attached by the same script), else its
//!   `things_image_nr`, else its event code — the run's events.tsv `value`, which the dataset's
//!   `task-main_events.json` calls the THINGS image number (catch trials: 999999).
//! - **Test vs training**: the metadata's `trial_type`, `exp` (22,248 images, each shown once:
//!   training), `test` (200 images shown 12 times, once per session: test) or `catch` (left
//!   out). The event codes alone do not tell test images apart.
//!
//! [`prepare_participant`] groups the epochs by image as [`crate::bids_eeg::prepare_run`] does
//! for an EEG run (images sorted by path, repetitions in recording order), and
//! [`write_things_eeg2`] writes them where THINGS-EEG2's preprocessed data would be.
//!
//! **Zero-shot.** THINGS-MEG's `exp` images cover all 1,854 concepts, the 200 test concepts
//! included; ATM (Li et al. 2024), like THINGS-EEG2's split, trains only on concepts the test
//! never shows. [`prepare_participant`] therefore leaves out every training image whose THINGS
//! concept ([`things_concept`]) is a test image's concept, and says how many.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use brainrecon_formats::fif::{self, FifEpochs};

use crate::things_eeg2::{
    write_image_metadata, write_preprocessed, ImageEntry, ImageMetadata, PreprocessedEeg,
};
use crate::{DataError, Result};

/// The event code the preprocessing gives catch trials (`event_file.value.fillna(999999)`).
pub const CATCH_CODE: i64 = 999_999;

/// The dataset's folder of preprocessed epochs.
#[derive(Clone, Debug)]
pub struct ThingsMeg {
    /// The folder holding `preprocessed_P{n}-epo.fif`.
    pub preprocessed: PathBuf,
}

/// `preprocessed_P{n}-epo.fif` → `n` (a continuation part, `-epo-1.fif`, is none).
fn participant_number(name: &str) -> Option<u32> {
    let number = name
        .strip_prefix("preprocessed_P")?
        .strip_suffix("-epo.fif")?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
        .then(|| number.parse().ok())
        .flatten()
}

impl ThingsMeg {
    /// Finds the epochs under `root`: ds004212's root (`derivatives/preprocessed`), its
    /// `derivatives` folder, or the folder of the files itself.
    pub fn open(root: &Path) -> Result<Self> {
        let candidates = [
            root.join("derivatives").join("preprocessed"),
            root.join("preprocessed"),
            root.to_path_buf(),
        ];
        let has_epochs = |dir: &Path| {
            std::fs::read_dir(dir).is_ok_and(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .any(|e| participant_number(&e.file_name().to_string_lossy()).is_some())
            })
        };
        let preprocessed = candidates
            .into_iter()
            .find(|dir| has_epochs(dir))
            .ok_or_else(|| DataError::Missing {
                path: root
                    .join("derivatives")
                    .join("preprocessed")
                    .join("preprocessed_P1-epo.fif"),
                what: "THINGS-MEG's preprocessed epochs (derivatives/preprocessed/\
                       preprocessed_P{n}-epo.fif)"
                    .into(),
            })?;
        Ok(ThingsMeg { preprocessed })
    }

    /// The participants with epochs (`P1`, `P2`, …), in number order.
    pub fn participants(&self) -> Result<Vec<String>> {
        let entries = std::fs::read_dir(&self.preprocessed)
            .map_err(|e| DataError::io(&self.preprocessed, e))?;
        let mut numbers: Vec<u32> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| participant_number(&e.file_name().to_string_lossy()))
            .collect();
        numbers.sort_unstable();
        Ok(numbers.into_iter().map(|n| format!("P{n}")).collect())
    }

    /// The first epochs file of a participant: `P1`, `1`, `sub-BIGMEG1` or `BIGMEG1`.
    pub fn epochs_path(&self, participant: &str) -> PathBuf {
        let number = participant
            .trim_start_matches("sub-")
            .trim_start_matches("BIGMEG")
            .trim_start_matches('P');
        self.preprocessed
            .join(format!("preprocessed_P{number}-epo.fif"))
    }
}

/// Which half an epoch belongs to, by its metadata's `trial_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrialKind {
    /// `exp`: a THINGS image shown once (the training half).
    Training,
    /// `test`: one of the 200 images shown in every session (the test half).
    Test,
    /// `catch`: a target the participant responded to; left out.
    Catch,
}

/// One epoch's trial.
#[derive(Clone, Debug, PartialEq)]
pub struct MegTrial {
    /// Training (`exp`), test or catch.
    pub kind: TrialKind,
    /// The image: `image_path` with `/` separators, else `things_image_nr`, else the event
    /// code; `None` for catch trials.
    pub image: Option<String>,
    /// The event code (the THINGS image number; 999999 for catch trials).
    pub code: i64,
    /// The metadata's `session_nr`, when present.
    pub session: Option<String>,
    /// The metadata's `run_nr`, when present.
    pub run: Option<String>,
}

/// A number as pandas writes it to JSON (`6312.0`) as the integer it is (`6312`).
fn whole_number(text: &str) -> String {
    match text.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        _ => text.to_string(),
    }
}

/// Each epoch's trial, from the metadata (see the module documentation). Fails, naming the
/// file, when there is no metadata or no `trial_type`, or a `trial_type` is none of `exp`,
/// `test` and `catch`.
pub fn trials(epochs: &FifEpochs) -> Result<Vec<MegTrial>> {
    let path = &epochs.files[0];
    let field = "metadata (FIFFB_MNE_METADATA): trial_type";
    let metadata = epochs.metadata.as_ref().ok_or_else(|| {
        DataError::invalid(
            path,
            field,
            "epochs metadata with a trial_type column (exp, test, catch), as THINGS-MEG's",
            "no metadata",
        )
    })?;
    let kinds = metadata.column("trial_type").ok_or_else(|| {
        DataError::invalid(
            path,
            field,
            "a trial_type column (exp, test, catch)",
            format!(
                "columns {:?}",
                metadata.columns.iter().map(|c| &c.name).collect::<Vec<_>>()
            ),
        )
    })?;
    let image_paths = metadata.column("image_path");
    let image_numbers = metadata.column("things_image_nr");
    let text = |column: Option<&[Option<String>]>, i: usize| {
        column.and_then(|c| c[i].clone()).filter(|v| !v.is_empty())
    };
    let mut out = Vec::with_capacity(epochs.n_epochs());
    for (i, kind) in kinds.iter().enumerate() {
        let kind = match kind.as_deref() {
            Some("exp") => TrialKind::Training,
            Some("test") => TrialKind::Test,
            Some("catch") => TrialKind::Catch,
            other => {
                return Err(DataError::invalid(
                    path,
                    format!("{field} of epoch {i}"),
                    "exp, test or catch",
                    format!("{other:?}"),
                ))
            }
        };
        let code = epochs.events[i][2];
        let image = match kind {
            TrialKind::Catch => None,
            _ => Some(
                text(image_paths, i)
                    .map(|p| p.replace('\\', "/"))
                    .or_else(|| text(image_numbers, i).map(|n| whole_number(&n)))
                    .unwrap_or_else(|| code.to_string()),
            ),
        };
        out.push(MegTrial {
            kind,
            image,
            code,
            session: text(metadata.column("session_nr"), i).map(|v| whole_number(&v)),
            run: text(metadata.column("run_nr"), i).map(|v| whole_number(&v)),
        });
    }
    Ok(out)
}

/// What to keep of each epoch.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct MegOptions {
    /// Keep samples from this time (s) on; `None`: from the first.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            allow_hyphen_values = true,
            help = "Keep samples from this time on, in seconds (default: the epoch's first)"
        )
    )]
    pub tmin: Option<f64>,
    /// Keep samples up to this time (s); `None`: to the last.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            allow_hyphen_values = true,
            help = "Keep samples up to this time, in seconds (default: the epoch's last)"
        )
    )]
    pub tmax: Option<f64>,
    /// Keep only MEG channels (kind 1: THINGS-MEG's 271 gradiometers), leaving reference,
    /// trigger and other channels out.
    #[cfg_attr(feature = "cli", arg(long = "all-channels", action = clap::ArgAction::SetFalse, help = "Keep every channel, not only the MEG sensors"))]
    pub meg_only: bool,
    /// Leave the channels marked bad out.
    #[cfg_attr(feature = "cli", arg(long = "keep-bads", action = clap::ArgAction::SetFalse, help = "Keep the channels marked bad"))]
    pub exclude_bads: bool,
}

impl Default for MegOptions {
    fn default() -> Self {
        MegOptions {
            meg_only: true,
            exclude_bads: true,
            tmin: None,
            tmax: None,
        }
    }
}

/// The THINGS concept of an image, when its name tells it: the part of the file name before
/// its trailing `_NN` exemplar number (`aardvark_01b.jpg` → `aardvark`,
/// `aircraft_carrier_13s.jpg` → `aircraft_carrier`), else a THINGS-EEG2 folder without its number (`00001_aardvark` →
/// `aardvark`). None for an image known only by number (`6312` in the folder `things`) or a
/// name of another pattern: its concept is unknown.
pub fn things_concept(entry: &ImageEntry) -> Option<String> {
    let stem = entry
        .file
        .rsplit_once('.')
        .map_or(entry.file.as_str(), |s| s.0);
    if let Some((concept, exemplar)) = stem.rsplit_once('_') {
        let digits = exemplar.bytes().take_while(u8::is_ascii_digit).count();
        let exemplar_like = digits > 0
            && exemplar
                .bytes()
                .skip(digits)
                .all(|b| b.is_ascii_alphabetic());
        if exemplar_like && !concept.is_empty() {
            return Some(concept.to_string());
        }
    }
    let (number, name) = entry.concept.split_once('_')?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty())
        .then(|| name.to_string())
}

/// How two halves' concepts meet ([`things_concept`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConceptOverlap {
    /// Concepts of both halves, sorted.
    pub shared: Vec<String>,
    /// Indices of the first half's images whose concept is shared.
    pub first_shared: Vec<usize>,
    /// Images (of both halves) whose concept their names do not tell.
    pub unknown: usize,
}

/// The concepts `first` and `second` share (`first` the training images, `second` the test
/// images, say), and which of `first`'s images are of them.
pub fn concept_overlap(first: &[ImageEntry], second: &[ImageEntry]) -> ConceptOverlap {
    let mut unknown = 0;
    let mut concepts = |entries: &[ImageEntry]| -> Vec<Option<String>> {
        let concepts: Vec<Option<String>> = entries.iter().map(things_concept).collect();
        unknown += concepts.iter().filter(|c| c.is_none()).count();
        concepts
    };
    let (a, b) = (concepts(first), concepts(second));
    let in_second: BTreeSet<&String> = b.iter().flatten().collect();
    let first_shared: Vec<usize> = (0..a.len())
        .filter(|&i| a[i].as_ref().is_some_and(|c| in_second.contains(c)))
        .collect();
    let shared: BTreeSet<String> = first_shared.iter().filter_map(|&i| a[i].clone()).collect();
    ConceptOverlap {
        shared: shared.into_iter().collect(),
        first_shared,
        unknown,
    }
}

/// A participant's epochs grouped by image.
#[derive(Clone, Debug)]
pub struct PreparedMeg {
    /// [images, repetitions, channels, times] of the `exp` trials.
    pub training: PreprocessedEeg,
    /// [images, repetitions, channels, times] of the `test` trials.
    pub test: PreprocessedEeg,
    /// The image of each training condition, in order (sorted).
    pub training_images: Vec<String>,
    /// The image of each test condition, in order (sorted).
    pub test_images: Vec<String>,
    /// Catch trials left out.
    pub catch: usize,
    /// Training (`exp`) images left out because their concept is a test concept (zero-shot),
    /// sorted.
    pub dropped_training: Vec<String>,
    /// Trials of those images.
    pub dropped_trials: usize,
    /// The test concepts training showed before the drop, sorted.
    pub shared_concepts: Vec<String>,
    /// Images whose concept their names do not tell (numbers only): they could not be checked.
    pub unknown_concepts: usize,
    /// The FIF parts read.
    pub files: Vec<PathBuf>,
}

/// Groups the epochs of `path` (a participant's first file) by image: per half, images sorted,
/// each image's repetitions in recording order, channels and times as `options` keep them.
/// Training images of a test concept are left out (see the module documentation); it is an
/// error when none is left. Every image of a half must have been shown as often as the others
/// (THINGS-MEG: training once, test 12 times). The samples are streamed part by part, never
/// all held twice.
pub fn prepare_participant(path: &Path, options: &MegOptions) -> Result<PreparedMeg> {
    let header = fif::read_epochs_header(path)?;
    let trials = trials(&header)?;
    let channels: Vec<usize> = (0..header.channels.len())
        .filter(|&c| {
            let channel = &header.channels[c];
            (!options.meg_only || channel.kind == 1)
                && !(options.exclude_bads && header.bads.contains(&channel.name))
        })
        .collect();
    if channels.is_empty() {
        return Err(DataError::invalid(
            path,
            "channels (FIFF_CH_INFO)",
            format!("channels to keep ({options:?})"),
            "none",
        ));
    }
    let all_times = header.times();
    let eps = 1e-9;
    let samples: Vec<usize> = (0..all_times.len())
        .filter(|&i| {
            options.tmin.is_none_or(|t| all_times[i] >= t - eps)
                && options.tmax.is_none_or(|t| all_times[i] <= t + eps)
        })
        .collect();
    if samples.is_empty() {
        return Err(DataError::invalid(
            path,
            "times (first and last sample)",
            format!(
                "samples between {:?} and {:?} s",
                options.tmin, options.tmax
            ),
            format!(
                "{} to {} s",
                all_times.first().copied().unwrap_or(0.0),
                all_times.last().copied().unwrap_or(0.0)
            ),
        ));
    }
    // Each half's images, sorted, with their epochs in recording order.
    let mut halves: [BTreeMap<String, Vec<usize>>; 2] = Default::default();
    let mut catch = 0;
    for (epoch, trial) in trials.iter().enumerate() {
        let half = match (trial.kind, &trial.image) {
            (TrialKind::Training, Some(image)) => halves[0].entry(image.clone()),
            (TrialKind::Test, Some(image)) => halves[1].entry(image.clone()),
            _ => {
                catch += 1;
                continue;
            }
        };
        half.or_default().push(epoch);
    }
    // Zero-shot: no training image of a concept the test shows.
    let entries = |half: &BTreeMap<String, Vec<usize>>| -> Vec<ImageEntry> {
        half.keys().map(|image| image_entry(image)).collect()
    };
    let overlap = concept_overlap(&entries(&halves[0]), &entries(&halves[1]));
    let training_images: Vec<String> = halves[0].keys().cloned().collect();
    let dropped_training: Vec<String> = overlap
        .first_shared
        .iter()
        .map(|&i| training_images[i].clone())
        .collect();
    let mut dropped_trials = 0;
    for image in &dropped_training {
        dropped_trials += halves[0].remove(image).map_or(0, |epochs| epochs.len());
    }
    if halves[0].is_empty() && !dropped_training.is_empty() {
        return Err(DataError::invalid(
            path,
            "metadata (FIFFB_MNE_METADATA): image_path",
            "training (exp) images of concepts the test images never show",
            format!(
                "none: all {} training images are of the test's concepts ({})",
                dropped_training.len(),
                overlap.shared.join(", ")
            ),
        ));
    }
    let (c, t) = (channels.len(), samples.len());
    let per_epoch = c * t;
    // Where each epoch goes: (half, offset of its [channels, times] block).
    let mut slots: Vec<Option<(usize, usize)>> = vec![None; trials.len()];
    let mut repetitions = [0usize; 2];
    for (h, half) in halves.iter().enumerate() {
        let which = ["training (exp)", "test"][h];
        repetitions[h] = half.values().map(Vec::len).min().unwrap_or(0);
        if let Some((image, epochs)) = half.iter().find(|(_, e)| e.len() != repetitions[h]) {
            return Err(DataError::invalid(
                path,
                "metadata (FIFFB_MNE_METADATA): image_path",
                format!(
                    "every {which} image shown {} times, as the least shown",
                    repetitions[h]
                ),
                format!("{image} shown {} times", epochs.len()),
            ));
        }
        for (k, epochs) in half.values().enumerate() {
            for (r, &epoch) in epochs.iter().enumerate() {
                slots[epoch] = Some((h, (k * repetitions[h] + r) * per_epoch));
            }
        }
    }
    let mut data: [Vec<f32>; 2] = [
        vec![0f32; halves[0].len() * repetitions[0] * per_epoch],
        vec![0f32; halves[1].len() * repetitions[1] * per_epoch],
    ];
    let n_times = header.n_times;
    let read = fif::read_epochs_with(path, |epoch, values| {
        if let Some(&Some((h, at))) = slots.get(epoch) {
            let out = &mut data[h][at..at + per_epoch];
            for (k, &ch) in channels.iter().enumerate() {
                let row = &values[ch * n_times..(ch + 1) * n_times];
                for (j, &s) in samples.iter().enumerate() {
                    out[k * t + j] = row[s];
                }
            }
        }
        Ok(())
    })?;
    if read.events != header.events {
        return Err(DataError::invalid(
            path,
            "events (FIFF_MNE_EVENT_LIST)",
            "the same epochs on a second reading",
            "different ones (the files changed while read)",
        ));
    }
    let ch_names: Vec<String> = channels
        .iter()
        .map(|&ch| header.channels[ch].name.clone())
        .collect();
    let times: Vec<f64> = samples.iter().map(|&s| all_times[s]).collect();
    let [training_data, test_data] = data;
    let half = |data: Vec<f32>, h: usize| PreprocessedEeg {
        data,
        conditions: halves[h].len(),
        repetitions: repetitions[h],
        ch_names: ch_names.clone(),
        times: times.clone(),
    };
    Ok(PreparedMeg {
        training: half(training_data, 0),
        test: half(test_data, 1),
        training_images: halves[0].keys().cloned().collect(),
        test_images: halves[1].keys().cloned().collect(),
        catch,
        dropped_training,
        dropped_trials,
        shared_concepts: overlap.shared,
        unknown_concepts: overlap.unknown,
        files: header.files,
    })
}

/// An image of the epochs as a THINGS-EEG2 entry: its folder is the concept
/// (`images_meg/aardvark/aardvark_01b.jpg` → `aardvark`, `aardvark_01b.jpg`); an image known
/// only by number goes in a folder `things`.
pub fn image_entry(image: &str) -> ImageEntry {
    ImageEntry::from_path(image, "things")
}

/// Writes a prepared participant into THINGS-EEG2's layout under `out`, as `bids-prepare` does
/// for an EEG run: `eeg_dataset/preprocessed_data/<subject>/preprocessed_eeg_{training,test}.npy`
/// (float64, as THINGS-EEG2 ships them) and `image_set/image_metadata.npy`. The float64 copy of
/// a half is made while it is written: THINGS-MEG's training half takes 13.6 GB then.
pub fn write_things_eeg2(prepared: &PreparedMeg, out: &Path, subject: &str) -> Result<()> {
    let metadata = ImageMetadata::from_paths(
        &prepared.training_images,
        &prepared.test_images,
        "things",
        &prepared.files[0],
        "metadata (FIFFB_MNE_METADATA): image_path",
    )?;
    let dir = out
        .join("eeg_dataset")
        .join("preprocessed_data")
        .join(subject);
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    for (name, half) in [("training", &prepared.training), ("test", &prepared.test)] {
        let values: Vec<f64> = half.data.iter().map(|&v| v as f64).collect();
        write_preprocessed(
            &dir.join(format!("preprocessed_eeg_{name}.npy")),
            &values,
            [
                half.conditions,
                half.repetitions,
                half.channels(),
                half.times.len(),
            ],
            &half.ch_names,
            &half.times,
        )?;
    }
    let image_set = out.join("image_set");
    std::fs::create_dir_all(&image_set).map_err(|e| DataError::io(&image_set, e))?;
    write_image_metadata(&image_set.join("image_metadata.npy"), &metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participants_are_first_parts_only() {
        assert_eq!(participant_number("preprocessed_P1-epo.fif"), Some(1));
        assert_eq!(participant_number("preprocessed_P12-epo.fif"), Some(12));
        assert_eq!(participant_number("preprocessed_P1-epo-1.fif"), None);
        assert_eq!(participant_number("preprocessed_P-epo.fif"), None);
        let set = ThingsMeg {
            preprocessed: PathBuf::from("/d"),
        };
        for name in ["P3", "3", "sub-BIGMEG3", "BIGMEG3"] {
            assert_eq!(
                set.epochs_path(name),
                Path::new("/d/preprocessed_P3-epo.fif")
            );
        }
    }

    #[test]
    fn numbers_as_pandas_writes_them_are_whole() {
        assert_eq!(whole_number("6312.0"), "6312");
        assert_eq!(whole_number("3"), "3");
        assert_eq!(whole_number("2.5"), "2.5");
        assert_eq!(
            image_entry("images_meg/aardvark/aardvark_01b.jpg"),
            ImageEntry {
                concept: "aardvark".into(),
                file: "aardvark_01b.jpg".into()
            }
        );
        assert_eq!(image_entry("6312").concept, "things");
    }

    #[test]
    fn concepts_come_from_the_exemplar_name_or_a_numbered_folder() {
        let concept = |path: &str| things_concept(&image_entry(path));
        assert_eq!(
            concept("images_meg/aardvark/aardvark_01b.jpg").as_deref(),
            Some("aardvark")
        );
        assert_eq!(
            concept("images_test_meg/aircraft_carrier_13s.jpg").as_deref(),
            Some("aircraft_carrier")
        );
        assert_eq!(
            concept("00042_small_red_circle/small_red_circle_01.png").as_deref(),
            Some("small_red_circle")
        );
        assert_eq!(concept("00003_jam/picture.jpg").as_deref(), Some("jam"));
        // known only by number, or by a name of another pattern: unknown
        assert_eq!(concept("6312"), None);
        assert_eq!(concept("images/cat.jpg"), None);
        assert_eq!(concept("things/_01.jpg"), None);
    }

    #[test]
    fn training_images_of_test_concepts_are_found() {
        let entries =
            |paths: &[&str]| -> Vec<ImageEntry> { paths.iter().map(|p| image_entry(p)).collect() };
        let training = entries(&[
            "images_meg/aardvark/aardvark_01b.jpg",
            "images_meg/drawer/drawer_02s.jpg",
            "images_meg/gate/gate_06s.jpg",
            "images_meg/drawer/drawer_05s.jpg",
            "4711",
        ]);
        let test = entries(&[
            "images_test_meg/drawer/drawer_07s.jpg",
            "images_test_meg/umbrella/umbrella_09s.jpg",
        ]);
        let overlap = concept_overlap(&training, &test);
        assert_eq!(overlap.shared, vec!["drawer".to_string()]);
        assert_eq!(overlap.first_shared, vec![1, 3]);
        assert_eq!(overlap.unknown, 1);
        assert!(concept_overlap(&training[..1], &test).shared.is_empty());
    }
}
