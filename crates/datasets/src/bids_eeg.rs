//! An image experiment recorded with EEG in BIDS: `sub-XX/eeg/sub-XX_task-T_eeg.vhdr` (with its
//! `.vmrk` and `.eeg`), `_eeg.edf` or `_eeg.bdf` beside `sub-XX_task-T_events.tsv`, one row per
//! image shown. A lab's own experiment, or THINGS-EEG1 (OpenNeuro ds003825) as it ships.
//!
//! - **The recording** is read by [`brainrecon_formats::brainvision`] or
//!   [`brainrecon_formats::edf`] (EDF, EDF+, BDF, BDF+), then epoched the same way. EDF+/BDF+
//!   annotation signals are not channels; every other signal must share one sample rate.
//!   Voltages become volts as MNE makes them. The events come from events.tsv for either
//!   format (not from markers or EDF+ annotations).
//! - **The image** of a row is its `stim_file` (BIDS's column), else `stim` (ds003825's). Paths
//!   may use Windows separators (ds003825: `stimuli\carousel\carousel_11s.jpg`); the image's
//!   concept is its folder (`carousel`).
//! - **Test rows** are those with `isteststim` 1 (ds003825's validation images) or `trial_type`
//!   `test`; the others are training rows. A row without an image is not an image event.
//! - **Onsets** are seconds, as BIDS defines them, unless every onset is a whole number and
//!   some lie beyond the recording's length in seconds: then they are samples (ds003825 writes
//!   samples; its sidecar calls them only "onset of event").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use brainrecon_formats::brainvision;
use brainrecon_formats::edf;
use brainrecon_formats::events::Events;

use crate::eeg_preprocess::{mvnn_in_place, Epocher};
use crate::things_eeg2::{PreprocessedEeg, RawPreprocessing};
use crate::{DataError, Result};

/// The format of a run's recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EegFormat {
    /// `_eeg.vhdr` with its `.vmrk` and `.eeg`.
    BrainVision,
    /// `_eeg.edf` or `_eeg.bdf` (EDF, EDF+, BDF, BDF+).
    Edf,
}

/// One run's files.
#[derive(Clone, Debug)]
pub struct EegRun {
    /// The recording: the BrainVision header, or the EDF/BDF file.
    pub recording: PathBuf,
    /// BrainVision or EDF/BDF.
    pub format: EegFormat,
    /// The run's `_events.tsv`.
    pub events: PathBuf,
}

/// The run of `subject` (`01` or `sub-01`) and `task` under a BIDS root: its recording is the
/// first of `_eeg.vhdr`, `_eeg.edf` and `_eeg.bdf` there.
pub fn find_run(root: &Path, subject: &str, task: &str) -> Result<EegRun> {
    let subject = subject.strip_prefix("sub-").unwrap_or(subject);
    let dir = root.join(format!("sub-{subject}")).join("eeg");
    let stem = format!("sub-{subject}_task-{task}");
    let events = dir.join(format!("{stem}_events.tsv"));
    let candidates = [
        ("vhdr", EegFormat::BrainVision),
        ("edf", EegFormat::Edf),
        ("bdf", EegFormat::Edf),
    ];
    let Some((recording, format)) = candidates
        .iter()
        .map(|(ext, format)| (dir.join(format!("{stem}_eeg.{ext}")), *format))
        .find(|(path, _)| path.is_file())
    else {
        return Err(DataError::Missing {
            path: dir.join(format!("{stem}_eeg.vhdr")),
            what: "the run's recording: BrainVision (_eeg.vhdr), EDF (_eeg.edf) or BDF (_eeg.bdf)"
                .into(),
        });
    };
    if !events.is_file() {
        return Err(DataError::Missing {
            path: events,
            what: "the run's events (_events.tsv)".into(),
        });
    }
    Ok(EegRun {
        recording,
        format,
        events,
    })
}

/// A run's recording as epoching takes it, from either format.
struct Recording {
    channels: Vec<String>,
    sfreq: f64,
    samples: usize,
    /// [channels, samples] row-major, in volts for voltage units.
    data: Vec<f64>,
    /// The format's names for the fields errors point at: the channel list, the sample rate
    /// and the length.
    fields: [&'static str; 3],
}

/// Reads the run's recording, whichever its format.
fn read_recording(run: &EegRun) -> Result<Recording> {
    match run.format {
        EegFormat::BrainVision => {
            let raw = brainvision::read(&run.recording)?;
            Ok(Recording {
                channels: raw.channels.into_iter().map(|c| c.name).collect(),
                sfreq: raw.sfreq,
                samples: raw.samples,
                data: raw.data,
                fields: ["Channel Infos", "SamplingInterval", "DataPoints"],
            })
        }
        EegFormat::Edf => edf_recording(edf::read(&run.recording)?),
    }
}

/// The data signals of an EDF/BDF file as one recording: annotations left out, values in
/// volts for voltage units (MNE's scaling). Every signal must have the same rate.
fn edf_recording(file: edf::Edf) -> Result<Recording> {
    let path = &file.path;
    let header = &file.header;
    let picks = file.data_signals();
    let Some(&first) = picks.first() else {
        return Err(DataError::invalid(
            path,
            "signals",
            "at least one signal besides annotations",
            "annotations only",
        ));
    };
    if header.record_duration <= 0.0 {
        return Err(DataError::invalid(
            path,
            "data record duration",
            "a duration above 0 seconds (to give the signals a sample rate)",
            header.record_duration.to_string(),
        ));
    }
    let per_record = header.signals[first].samples_per_record;
    if let Some(&other) = picks
        .iter()
        .find(|&&i| header.signals[i].samples_per_record != per_record)
    {
        let (a, b) = (&header.signals[first], &header.signals[other]);
        return Err(DataError::invalid(
            path,
            "samples per data record",
            format!(
                "one sample rate for every signal ({} has {} Hz)",
                a.label,
                header.rate(first)
            ),
            format!("{} at {} Hz", b.label, header.rate(other)),
        ));
    }
    let samples = file.records as usize * per_record;
    let mut data = Vec::with_capacity(picks.len() * samples);
    let mut signals = file.signals;
    for &i in &picks {
        let scale = header.signals[i].volts_per_unit().unwrap_or(1.0);
        data.extend(
            std::mem::take(&mut signals[i])
                .into_iter()
                .map(|v| v * scale),
        );
    }
    Ok(Recording {
        channels: picks
            .iter()
            .map(|&i| header.signals[i].label.clone())
            .collect(),
        sfreq: header.rate(first),
        samples,
        data,
        fields: [
            "signal labels",
            "samples per data record",
            "number of data records",
        ],
    })
}

/// One image shown.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageEvent {
    /// Sample of its onset in the recording.
    pub sample: usize,
    /// Its path with `/` separators, as the events name it.
    pub image: String,
    /// A test row (`isteststim` 1 or `trial_type` `test`), else training.
    pub test: bool,
}

/// Whether the events' onsets were read as samples (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnsetUnit {
    /// Onsets in seconds, as BIDS defines them.
    Seconds,
    /// Onsets in samples of the recording (ds003825).
    Samples,
}

/// The image events of `events` in a recording of `samples` samples at `sfreq`.
pub fn image_events(
    events: &Events,
    sfreq: f64,
    samples: usize,
) -> Result<(Vec<ImageEvent>, OnsetUnit)> {
    let path = events.path().to_path_buf();
    let column = ["stim_file", "stim"]
        .into_iter()
        .find(|c| events.columns().iter().any(|k| k == c))
        .ok_or_else(|| {
            DataError::invalid(
                &path,
                "columns",
                "a stim_file (or stim) column naming each row's image",
                events.columns().join(", "),
            )
        })?;
    let images = events.text(column)?;
    let onsets = events.numbers("onset")?;
    let test_flags = match events.columns().iter().any(|c| c == "isteststim") {
        true => events
            .integers("isteststim")?
            .into_iter()
            .map(|v| v == Some(1))
            .collect(),
        false => match events.columns().iter().any(|c| c == "trial_type") {
            true => events
                .text("trial_type")?
                .into_iter()
                .map(|v| v == Some("test"))
                .collect(),
            false => vec![false; events.len()],
        },
    };
    let seconds = samples as f64 / sfreq;
    let known: Vec<f64> = onsets.iter().flatten().copied().collect();
    if let Some(bad) = known.iter().find(|v| !v.is_finite() || **v < 0.0) {
        return Err(DataError::invalid(
            &path,
            "onset",
            "finite, non-negative onsets",
            bad.to_string(),
        ));
    }
    let unit = match known.iter().all(|v| v.fract() == 0.0) && known.iter().any(|&v| v > seconds) {
        true => OnsetUnit::Samples,
        false => OnsetUnit::Seconds,
    };
    let mut out = Vec::new();
    for (row, (image, onset)) in images.iter().zip(&onsets).enumerate() {
        let (Some(image), Some(onset)) = (image, onset) else {
            continue;
        };
        if image.is_empty() || *image == "n/a" {
            continue;
        }
        let sample = match unit {
            OnsetUnit::Samples => *onset,
            OnsetUnit::Seconds => (onset * sfreq).round(),
        };
        if sample >= samples as f64 {
            return Err(DataError::invalid(
                &path,
                "onset",
                format!("onsets inside the recording ({samples} samples at {sfreq} Hz)"),
                format!("{onset} in row {}", row + 1),
            ));
        }
        out.push(ImageEvent {
            sample: sample as usize,
            image: image.replace('\\', "/"),
            test: test_flags[row],
        });
    }
    if out.is_empty() {
        return Err(DataError::invalid(
            &path,
            column,
            "rows naming images",
            "none",
        ));
    }
    Ok((out, unit))
}

/// A run made into epochs per image.
#[derive(Clone, Debug)]
pub struct PreparedEegRun {
    /// Training images' epochs, [conditions, repetitions, channels, times].
    pub training: PreprocessedEeg,
    /// Test images' epochs, [conditions, repetitions, channels, times].
    pub test: PreprocessedEeg,
    /// The image of each condition, in order.
    pub training_images: Vec<String>,
    /// The image of each test condition, in order.
    pub test_images: Vec<String>,
    /// How the onsets were read.
    pub onsets: OnsetUnit,
    /// Epochs dropped for leaving the recording.
    pub dropped: usize,
}

/// Epochs one run as [`crate::things_eeg2::preprocess_raw`] epochs a session (events, channel
/// selection, baseline, resampling, MVNN from both halves), then groups them by image: images
/// sorted by path, each image's repetitions in recording order. Every image of a half must
/// have been shown as often as the others of that half.
pub fn prepare_run(run: &EegRun, options: &RawPreprocessing) -> Result<PreparedEegRun> {
    let raw = read_recording(run)?;
    let [channels_field, rate_field, length_field] = raw.fields;
    let events = Events::read(&run.events)?;
    let (shown, onsets) = image_events(&events, raw.sfreq, raw.samples)?;
    let picks: Vec<usize> = (0..raw.channels.len())
        .filter(|&c| options.channels.keeps(&raw.channels[c]))
        .collect();
    if picks.is_empty() {
        return Err(DataError::invalid(
            &run.recording,
            channels_field,
            format!("channels to keep ({:?})", options.channels),
            "none",
        ));
    }
    if options.sfreq > raw.sfreq {
        return Err(DataError::invalid(
            &run.recording,
            rate_field,
            format!("at least the epochs' rate, {} Hz", options.sfreq),
            raw.sfreq.to_string(),
        ));
    }
    // The readers bound the rate already; this also sizes the epoch and its resampling.
    let epocher = Epocher::checked(
        &run.recording,
        rate_field,
        options.tmin,
        options.tmax,
        raw.sfreq,
        options.sfreq,
    )?;
    if epocher.span_len() > raw.samples {
        return Err(DataError::invalid(
            &run.recording,
            length_field,
            "a recording longer than one epoch",
            format!("{} samples", raw.samples),
        ));
    }
    let times = epocher.times.clone();
    let (c, t) = (picks.len(), times.len());
    // Every epoch held at once as f64, before any is cut.
    crate::limits::array_bytes(
        &run.events,
        "onset (epochs × channels × samples)",
        &[shown.len() as u64, c as u64, t as u64],
        8,
    )?;
    let mut halves: [BTreeMap<String, Vec<Vec<f64>>>; 2] = Default::default();
    let mut dropped = 0;
    for event in &shown {
        match epocher.epoch(&raw.data, raw.samples, &picks, event.sample) {
            Some(x) => halves[event.test as usize]
                .entry(event.image.clone())
                .or_default()
                .push(x),
            None => dropped += 1,
        }
    }
    if let Some(dim) = options.mvnn {
        let [training, test] = &mut halves;
        if !mvnn_in_place(&mut [training, test], c, t, dim) {
            return Err(DataError::invalid(
                &run.recording,
                "data",
                "a positive-definite noise covariance for MVNN (with one repetition per image, \
                 use --mvnn epochs)",
                "a singular one",
            ));
        }
    }
    let ch_names: Vec<String> = picks.iter().map(|&p| raw.channels[p].clone()).collect();
    let group = |half: &BTreeMap<String, Vec<Vec<f64>>>,
                 which: &str|
     -> Result<(PreprocessedEeg, Vec<String>)> {
        let repetitions = half.values().map(Vec::len).min().unwrap_or(0);
        if let Some((image, reps)) = half.iter().find(|(_, r)| r.len() != repetitions) {
            return Err(DataError::invalid(
                &run.events,
                "stim",
                format!("every {which} image shown {repetitions} times, as the least shown"),
                format!("{image} shown {} times", reps.len()),
            ));
        }
        let data = half
            .values()
            .flatten()
            .flat_map(|x| x.iter().map(|&v| v as f32))
            .collect();
        Ok((
            PreprocessedEeg {
                data,
                conditions: half.len(),
                repetitions,
                ch_names: ch_names.clone(),
                times: times.clone(),
            },
            half.keys().cloned().collect(),
        ))
    };
    let (training, training_images) = group(&halves[0], "training")?;
    let (test, test_images) = group(&halves[1], "test")?;
    Ok(PreparedEegRun {
        training,
        test,
        training_images,
        test_images,
        onsets,
        dropped,
    })
}
