//! `brainrecon eeg live`: a fitted EEG decoder reading a recording as it arrives (any of the
//! stream's sources: EDF/BDF, CSV, NWB, NumPy, raw), trial by trial. Each upward step of the
//! stim channel is an image's onset; once the recording reaches the end of that trial's epoch,
//! the epoch is cut (the decoder's channels, its tmin and length, optionally baseline-corrected
//! and resampled as `eeg preprocess` does), decoded, and the test images ranked by cosine
//! similarity. The page shows the seen image (when the stim code names a test image, THINGS'
//! convention: code i is test image i) beside the four ranked highest.
//!
//! Latency is measured from the arrival of the chunk that completes a trial's epoch to its
//! image being ready. Written at the end: OUT/session.json (every trial, the scores, the
//! latencies).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::b2c::chart::comparison_grid;
use crate::eeg::decoder::EegDecoder;
use crate::eeg::retrieval::{cosine_similarities, ranked};
use crate::error::{Result, RouteError};
use brainrecon_core::fs::{write_folder_atomic, write_json_atomic};
use brainrecon_core::DataError;
use brainrecon_datasets::eeg_preprocess::{find_events, Epocher};
use brainrecon_datasets::things_eeg2::{PreprocessedEeg, Split, ThingsEeg2};
use brainrecon_formats::image::RgbImage;
use brainrecon_formats::video::frames::read_frame;
use brainrecon_stream::{serve_page, FrameState, Hub, OpenOptions, Pace, Pacer, Source};
use serde::Serialize;

/// `brainrecon eeg live`.
#[derive(Clone, Debug)]
pub struct LiveEegRequest {
    /// The recording (as `stream --input` takes it).
    pub source: PathBuf,
    pub open: OpenOptions,
    /// The stim channel's label (case-insensitive).
    pub stim: String,
    /// A decoder folder (`eeg fit`).
    pub decoder: PathBuf,
    /// The THINGS-EEG2 layout holding the test images the decoder ranks.
    pub data: PathBuf,
    /// Subtract each channel's mean before 0 s (as `eeg preprocess`); off for a recording made
    /// of epochs that are already corrected.
    pub baseline: bool,
    pub pace: Pace,
    /// Serve the live page (on this address, or brainrecon's default).
    pub serve: bool,
    pub serve_address: Option<String>,
    pub out: PathBuf,
}

/// One trial as it was decoded.
#[derive(Clone, Debug, Serialize)]
pub struct LiveTrial {
    /// Seconds of the onset from the start of the recording.
    pub onset_s: f64,
    /// The stim code.
    pub code: i64,
    /// The five test images ranked highest (0-based).
    pub ranked: Vec<usize>,
    /// Whether the seen image (code − 1) ranked first, and in the first five; None when the
    /// code names no test image.
    pub top1: Option<bool>,
    pub top5: Option<bool>,
    /// Arrival of the chunk completing the epoch → image ready, in milliseconds.
    pub latency_ms: f64,
}

/// What a session did (OUT/session.json).
#[derive(Clone, Debug, Serialize)]
pub struct LiveEegReport {
    pub out: PathBuf,
    pub source: PathBuf,
    pub decoder: PathBuf,
    pub rate: f64,
    pub trials: Vec<LiveTrial>,
    /// Over trials whose code names a test image.
    pub scored: usize,
    pub top1: f64,
    pub top5: f64,
    pub chance_top1: f64,
    pub chance_top5: f64,
    pub latency_ms_median: f64,
    pub latency_ms_p95: f64,
    /// Onsets whose epoch the recording ended before.
    pub unfinished: usize,
}

impl LiveEegReport {
    pub fn text(&self) -> String {
        format!(
            "{} trials decoded from {} at {} Hz: single-trial top-1 {:.1} %, top-5 {:.1} % of \
             {} scored (chance {:.1} %, {:.1} %); latency median {:.2} ms, p95 {:.2} ms; {}",
            self.trials.len(),
            self.source.display(),
            self.rate,
            100.0 * self.top1,
            100.0 * self.top5,
            self.scored,
            100.0 * self.chance_top1,
            100.0 * self.chance_top5,
            self.latency_ms_median,
            self.latency_ms_p95,
            self.out.join("session.json").display()
        )
    }
}

/// A source's error: bad input, named by the stream's message (exit 2).
fn stream_error(error: brainrecon_stream::StreamError) -> RouteError {
    RouteError::Usage(error.to_string())
}

/// The recording so far, trimmed from the front as trials are decoded: [channels] rows.
struct Buffer {
    rows: Vec<Vec<f32>>,
    /// Absolute sample index of `rows[_][0]`.
    start: usize,
}

impl Buffer {
    fn end(&self) -> usize {
        self.start + self.rows.first().map_or(0, Vec::len)
    }

    /// Drops samples before `keep_from` (absolute).
    fn trim(&mut self, keep_from: usize) {
        let drop = keep_from
            .saturating_sub(self.start)
            .min(self.end() - self.start);
        if drop > 0 {
            self.rows.iter_mut().for_each(|r| {
                r.drain(..drop);
            });
            self.start += drop;
        }
    }
}

/// Decodes the recording (see the module documentation), serving the page when asked (its
/// address goes to `note`); `on_trial` sees each trial.
pub fn run_live(
    request: &LiveEegRequest,
    note: &dyn Fn(&str),
    mut on_trial: impl FnMut(&LiveTrial),
) -> Result<LiveEegReport> {
    let decoder = EegDecoder::open(&request.decoder)?;
    let meta = &decoder.meta;
    if meta.sfreq.is_nan() || meta.sfreq <= 0.0 {
        return Err(RouteError::Usage(format!(
            "{}: the decoder's epochs have no even sampling rate to cut live epochs at",
            request.decoder.display()
        )));
    }
    let set = ThingsEeg2::open(&request.data)?;
    let metadata = set.image_metadata()?;
    let image_paths = set.image_paths(&metadata, Split::Test)?;
    let d = meta.embeddings.width;
    let n_images = decoder.candidates.len() / d;
    if image_paths.len() != n_images {
        return Err(DataError::invalid(
            set.images.join("image_metadata.npy"),
            "test_img_files",
            format!("the {n_images} test images the decoder ranks"),
            format!("{} images", image_paths.len()),
        )
        .into());
    }
    let source = brainrecon_stream::open(&request.source, &request.open).map_err(stream_error)?;
    let rate = source.rate();
    let labels = source.labels();
    let find = |name: &str| labels.iter().position(|l| l.eq_ignore_ascii_case(name));
    let stim = find(&request.stim).ok_or_else(|| {
        DataError::invalid(
            &request.source,
            "channels",
            format!("a stim channel labelled '{}'", request.stim),
            labels.join(", "),
        )
    })?;
    let picks = meta
        .ch_names
        .iter()
        .map(|name| {
            find(name).ok_or_else(|| {
                DataError::invalid(
                    &request.source,
                    "channels",
                    format!("the decoder's channel {name}"),
                    labels.join(", "),
                )
            })
        })
        .collect::<std::result::Result<Vec<usize>, _>>()?;
    // The epoch: the decoder's first time and length; resampled when the rates differ.
    let resampled = (rate - meta.sfreq).abs() > 1e-9;
    let tmax = match resampled {
        true => meta.tmin + meta.times as f64 / meta.sfreq,
        false => meta.tmin + (meta.times as f64 - 1.0) / meta.sfreq,
    };
    if meta.sfreq > rate {
        return Err(DataError::invalid(
            &request.source,
            "rate",
            format!("at least the decoder's {} Hz", meta.sfreq),
            rate.to_string(),
        )
        .into());
    }
    // The source's rate may come from a file (an NWB series): checked and sized here.
    let mut epocher = Epocher::checked(&request.source, "rate", meta.tmin, tmax, rate, meta.sfreq)?;
    if !request.baseline {
        epocher = epocher.without_baseline();
    }
    if epocher.times.len() != meta.times {
        return Err(RouteError::Usage(format!(
            "{}: {} Hz epochs from {} s give {} samples where the decoder takes {}",
            request.source.display(),
            rate,
            meta.tmin,
            epocher.times.len(),
            meta.times
        )));
    }
    let before = (-(meta.tmin * rate).round()).max(0.0) as usize;
    let span = epocher.span_len();
    let channels = source.channels();
    let hub_owned = Hub::new();
    let server = match request.serve {
        true => {
            let server = serve_page(request.serve_address.as_deref(), &hub_owned, note)?;
            note(&format!("live page: {}", server.url()));
            Some(server)
        }
        false => None,
    };
    let hub = server.as_ref().map(|_| &hub_owned);
    let mut pacer = Pacer::new(source, request.pace);
    let mut buffer = Buffer {
        rows: vec![Vec::new(); channels],
        start: 0,
    };
    let mut pending: Vec<(usize, i64)> = Vec::new();
    let mut trials = Vec::new();
    let mut last_stim = 0.0f64;
    // The page's pictures, read only when there is a page.
    let images: Vec<RgbImage> = match hub {
        Some(_) => image_paths
            .iter()
            .map(|p| read_frame(p))
            .collect::<std::result::Result<_, _>>()?,
        None => Vec::new(),
    };
    let eeg_of = |x: Vec<f64>| PreprocessedEeg {
        data: x.into_iter().map(|v| v as f32).collect(),
        conditions: 1,
        repetitions: 1,
        ch_names: meta.ch_names.clone(),
        times: epocher.times.clone(),
    };
    while let Some(chunk) = pacer.next_chunk(256).map_err(stream_error)? {
        let arrived = Instant::now();
        let first_new = buffer.end();
        for t in 0..chunk.frames() {
            let frame = chunk.frame(t);
            for (c, row) in buffer.rows.iter_mut().enumerate() {
                row.push(frame[c]);
            }
        }
        // Events among the new samples (the step from the last sample seen before them).
        let stim_row = &buffer.rows[stim][first_new - buffer.start..];
        let mut series = Vec::with_capacity(stim_row.len() + 1);
        series.push(last_stim);
        series.extend(stim_row.iter().map(|&v| v as f64));
        last_stim = *series.last().unwrap_or(&last_stim);
        for (i, code) in find_events(&series) {
            pending.push((first_new + i - 1, code));
        }
        // Every trial whose epoch is complete.
        let end = buffer.end();
        let start = buffer.start;
        let ready: Vec<(usize, i64)> = pending
            .iter()
            .copied()
            .filter(|&(onset, _)| onset + span - before <= end)
            .collect();
        pending.retain(|&(onset, _)| onset + span - before > end);
        for (onset, code) in ready {
            if onset < before + start {
                continue; // its baseline lies before the recording
            }
            let flat: Vec<f64> = picks
                .iter()
                .flat_map(|&c| buffer.rows[c].iter().map(|&v| v as f64))
                .collect();
            let local = onset - start;
            let Some(x) = epocher.epoch(
                &flat,
                end - start,
                &(0..picks.len()).collect::<Vec<_>>(),
                local,
            ) else {
                continue;
            };
            let decoded = decoder.decode(&eeg_of(x))?;
            // A NaN epoch or model is refused, not scored (brainrecon_metrics::rank).
            brainrecon_metrics::require_finite(
                &format!(
                    "{}: the embedding decoded from the epoch at {:.3} s",
                    decoder.dir.display(),
                    onset as f64 / rate
                ),
                &decoded,
                d,
            )?;
            let similarity = cosine_similarities(&decoded, &decoder.candidates, d);
            let order = ranked(&similarity, 5);
            let seen = (code >= 1 && code as usize <= n_images).then(|| code as usize - 1);
            // Ties count against the seen image, as in `eeg eval`.
            let rank = seen.map(|s| brainrecon_metrics::match_rank(&similarity, s));
            if let Some(hub) = hub {
                let mut row: Vec<RgbImage> = Vec::new();
                if let Some(s) = seen {
                    row.push(images[s].clone());
                }
                row.extend(order.iter().take(4).map(|&i| images[i].clone()));
                hub.publish(
                    Arc::new(comparison_grid(&[row], 128)),
                    None,
                    FrameState {
                        frames: trials.len() as u64 + 1,
                        title: "brainrecon eeg live: seen | decoded (ranked)".into(),
                        window_start_s: onset as f64 / rate,
                        latency_ms: arrived.elapsed().as_secs_f64() * 1e3,
                        status: "decoding".into(),
                        ..FrameState::default()
                    },
                );
            }
            let trial = LiveTrial {
                onset_s: onset as f64 / rate,
                code,
                top1: rank.map(|r| r <= 1),
                top5: rank.map(|r| r <= 5),
                ranked: order,
                latency_ms: arrived.elapsed().as_secs_f64() * 1e3,
            };
            on_trial(&trial);
            trials.push(trial);
        }
        // Keep what the pending trials (and the next ones' baselines) still need.
        let keep = pending
            .iter()
            .map(|&(onset, _)| onset.saturating_sub(before))
            .min()
            .unwrap_or(buffer.end().saturating_sub(before + span));
        buffer.trim(keep);
    }
    if let Some(hub) = hub {
        hub.set_status("recording ended", true);
    }
    if let Some(server) = server {
        server.shutdown();
    }
    let scored: Vec<&LiveTrial> = trials.iter().filter(|t| t.top1.is_some()).collect();
    let share = |f: &dyn Fn(&LiveTrial) -> bool| {
        scored.iter().filter(|t| f(t)).count() as f64 / scored.len().max(1) as f64
    };
    let mut latencies: Vec<f64> = trials.iter().map(|t| t.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| match latencies.len() {
        0 => 0.0,
        n => latencies[((q * (n - 1) as f64).round() as usize).min(n - 1)],
    };
    let report = LiveEegReport {
        out: request.out.clone(),
        source: request.source.clone(),
        decoder: request.decoder.clone(),
        rate,
        scored: scored.len(),
        top1: share(&|t| t.top1 == Some(true)),
        top5: share(&|t| t.top5 == Some(true)),
        chance_top1: 1.0 / n_images as f64,
        chance_top5: (5.0 / n_images as f64).min(1.0),
        latency_ms_median: quantile(0.5),
        latency_ms_p95: quantile(0.95),
        unfinished: pending.len(),
        trials,
    };
    write_folder_atomic(&request.out, |dir| -> Result<()> {
        Ok(write_json_atomic(&dir.join("session.json"), &report)?)
    })?;
    Ok(report)
}

/// Writes a recording for rehearsing `eeg live`: `repetitions` repetitions of every condition
/// of `eeg` (a test half), one after another as in a session (condition by condition within
/// each repetition), each epoch placed whole, with a `stim` channel stepping to code
/// condition + 1 for 3 samples at its 0 s. CSV with a header of labels, at the epochs' rate.
pub fn write_rehearsal(eeg: &PreprocessedEeg, repetitions: usize, path: &Path) -> Result<f64> {
    let (c, t) = (eeg.channels(), eeg.times.len());
    let rate = eeg.sampling_rate();
    let zero = eeg.times.iter().position(|&s| s >= -1e-9).unwrap_or(0);
    let mut text = eeg.ch_names.join(",") + ",stim\n";
    use std::fmt::Write;
    for r in 0..repetitions.min(eeg.repetitions) {
        for condition in 0..eeg.conditions {
            let x = eeg.epoch(condition, r);
            for s in 0..t {
                for ch in 0..c {
                    let _ = write!(text, "{},", x[ch * t + s]);
                }
                let code = if (zero..zero + 3).contains(&s) {
                    condition + 1
                } else {
                    0
                };
                let _ = writeln!(text, "{code}");
            }
        }
    }
    brainrecon_core::fs::write_bytes_atomic(path, text.as_bytes())?;
    Ok(rate)
}
