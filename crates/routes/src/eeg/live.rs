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

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::eeg::decoder::{DecoderMeta, EegDecoder};
use crate::eeg::retrieval::{cosine_similarities, ranked};
use crate::error::{Result, RouteError};
use crate::score::report::comparison_grid;
use brainrecon_core::fs::{write_folder_atomic, write_json_atomic};
use brainrecon_core::DataError;
use brainrecon_datasets::eeg_preprocess::{find_events, Epocher};
use brainrecon_datasets::things_eeg2::{PreprocessedEeg, Split, ThingsEeg2};
use brainrecon_formats::image::RgbImage;
use brainrecon_formats::video::frames::read_frame;
use brainrecon_stream::{serve_page, FrameState, Hub, OpenOptions, Pace, Pacer, Server, Source};
use serde::Serialize;

/// `brainrecon eeg live`.
#[derive(Clone, Debug)]
pub struct LiveEegRequest {
    /// The recording (as `stream --input` takes it).
    pub source: PathBuf,
    /// How the recording is opened: format, sampling rate (Hz) and channel count where the file
    /// does not say, EDF/BDF signals, NWB series.
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
    /// Replay a file in real time, or as fast as it reads.
    pub pace: Pace,
    /// Serve the live page (on this address, or brainrecon's default).
    pub serve: bool,
    /// The page's address (`None`: brainrecon's default).
    pub serve_address: Option<String>,
    /// The folder `session.json` is written into at the end.
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
    /// Whether the seen image (code − 1) ranked first; None when the code names no test
    /// image.
    pub top1: Option<bool>,
    /// Whether it ranked in the first five (None when the code names no test image).
    pub top5: Option<bool>,
    /// Arrival of the chunk completing the epoch → image ready, in milliseconds.
    pub latency_ms: f64,
}

impl LiveTrial {
    /// As `eeg live` shows each trial on a terminal: onset, code, ranking and latency.
    pub fn text(&self) -> String {
        format!(
            "trial at {:.2} s (code {}): ranked {:?}, {:.2} ms",
            self.onset_s, self.code, self.ranked, self.latency_ms
        )
    }
}

/// What a session did (OUT/session.json).
#[derive(Clone, Debug, Serialize)]
pub struct LiveEegReport {
    /// The session's folder.
    pub out: PathBuf,
    /// The recording read.
    pub source: PathBuf,
    /// The `eeg fit` folder that decoded it.
    pub decoder: PathBuf,
    /// The recording's sampling rate, Hz.
    pub rate: f64,
    /// Every trial decoded, in onset order.
    pub trials: Vec<LiveTrial>,
    /// Over trials whose code names a test image.
    pub scored: usize,
    /// Share of the scored trials whose seen image ranked first.
    pub top1: f64,
    /// Share whose seen image ranked in the first five.
    pub top5: f64,
    /// 1/n over the n test images.
    pub chance_top1: f64,
    /// 5/n (at most 1).
    pub chance_top5: f64,
    /// Median latency over the trials, milliseconds (0 without trials).
    pub latency_ms_median: f64,
    /// 95th-percentile latency (nearest rank), milliseconds.
    pub latency_ms_p95: f64,
    /// Onsets whose epoch the recording ended before.
    pub unfinished: usize,
}

impl LiveEegReport {
    /// What the session did, in one line for people.
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

/// What a live EEG session brings.
#[derive(Clone, Debug)]
pub enum LiveEegEvent {
    /// A trial whose epoch is complete: decoded, ranked, and shown on the page.
    Trial(LiveTrial),
    /// A chunk of the recording arrived that completed no trial's epoch; `recorded_s`: seconds
    /// of the recording read so far.
    Waiting {
        /// Seconds of the recording read so far.
        recorded_s: f64,
    },
}

/// A live EEG session, pulled an event at a time:
///
/// ```no_run
/// # use brainrecon_routes::eeg::live::{LiveEegEvent, LiveEegRequest, LiveEegSession};
/// # fn request() -> LiveEegRequest { unimplemented!() }
/// let request = request();
/// let mut session = LiveEegSession::open(&request, &|line| eprintln!("{line}"))?;
/// while let Some(event) = session.next_event()? {
///     if let LiveEegEvent::Trial(trial) = event {
///         println!("code {}: ranked {:?}", trial.code, trial.ranked);
///     }
/// }
/// let report = session.finish()?;
/// # Ok::<(), brainrecon_routes::RouteError>(())
/// ```
pub struct LiveEegSession<'r> {
    request: &'r LiveEegRequest,
    decoder: EegDecoder,
    /// The embedding's width, and the test images it ranks.
    d: usize,
    n_images: usize,
    rate: f64,
    /// The stim channel, and the decoder's channels, in the source.
    stim: usize,
    picks: Vec<usize>,
    epocher: Epocher,
    /// Samples of an epoch before its onset, and in all.
    before: usize,
    span: usize,
    /// The page, when served, and its pictures.
    hub: Option<Arc<Hub>>,
    server: Option<Server>,
    images: Vec<RgbImage>,
    pacer: Pacer<Box<dyn Source + Send>>,
    buffer: Buffer,
    /// The stim channel's last sample read.
    last_stim: f64,
    /// Onsets (absolute sample) and codes whose epoch has not ended yet.
    pending: Vec<(usize, i64)>,
    /// Onsets and codes whose epoch the last chunk completed, not decoded yet.
    ready: VecDeque<(usize, i64)>,
    /// When the last chunk arrived.
    arrived: Instant,
    trials: Vec<LiveTrial>,
}

impl<'r> LiveEegSession<'r> {
    /// Opens the decoder, the test images and the recording, checks that they fit together,
    /// and serves the page when asked (its address goes to `note`).
    pub fn open(request: &'r LiveEegRequest, note: &dyn Fn(&str)) -> Result<Self> {
        let decoder = open_decoder(request)?;
        let image_paths = test_images(request, &decoder)?;
        let source =
            brainrecon_stream::open(&request.source, &request.open).map_err(stream_error)?;
        let rate = source.rate();
        let (stim, picks) = channel_picks(request, &source.labels(), &decoder.meta)?;
        let epocher = live_epocher(request, &decoder.meta, rate)?;
        let before = (-(decoder.meta.tmin * rate).round()).max(0.0) as usize;
        let span = epocher.span_len();
        let channels = source.channels();
        let hub = Hub::new();
        let server = match request.serve {
            true => {
                let server = serve_page(request.serve_address.as_deref(), &hub, note)?;
                note(&format!("live page: {}", server.url()));
                Some(server)
            }
            false => None,
        };
        let hub = server.as_ref().map(|_| hub);
        // The page's pictures, read only when there is a page.
        let images: Vec<RgbImage> = match hub {
            Some(_) => image_paths
                .iter()
                .map(|p| read_frame(p))
                .collect::<std::result::Result<_, _>>()?,
            None => Vec::new(),
        };
        Ok(LiveEegSession {
            request,
            d: decoder.meta.embeddings.width,
            n_images: image_paths.len(),
            decoder,
            rate,
            stim,
            picks,
            epocher,
            before,
            span,
            hub,
            server,
            images,
            pacer: Pacer::new(source, request.pace),
            buffer: Buffer {
                rows: vec![Vec::new(); channels],
                start: 0,
            },
            last_stim: 0.0,
            pending: Vec::new(),
            ready: VecDeque::new(),
            arrived: Instant::now(),
            trials: Vec::new(),
        })
    }

    /// The next event: each trial once its epoch is complete (reading the recording, at its
    /// pace, until one is); `None` once the recording has ended.
    pub fn next_event(&mut self) -> Result<Option<LiveEegEvent>> {
        loop {
            while let Some((onset, code)) = self.ready.pop_front() {
                if let Some(trial) = self.decode_trial(onset, code)? {
                    self.trials.push(trial.clone());
                    return Ok(Some(LiveEegEvent::Trial(trial)));
                }
            }
            if !self.read_chunk()? {
                return Ok(None);
            }
            if self.ready.is_empty() {
                let recorded_s = self.buffer.end() as f64 / self.rate;
                return Ok(Some(LiveEegEvent::Waiting { recorded_s }));
            }
        }
    }

    /// The trials decoded so far.
    pub fn trials(&self) -> &[LiveTrial] {
        &self.trials
    }

    /// Reads the next chunk into the buffer (first dropping what no trial needs any more),
    /// finds its onsets and queues the trials whose epoch it completes; `false` at the end of
    /// the recording.
    fn read_chunk(&mut self) -> Result<bool> {
        // Keep what the pending trials (and the next ones' baselines) still need.
        let (before, span) = (self.before, self.span);
        let keep = self
            .pending
            .iter()
            .map(|&(onset, _)| onset.saturating_sub(before))
            .min()
            .unwrap_or(self.buffer.end().saturating_sub(before + span));
        self.buffer.trim(keep);
        let Some(chunk) = self.pacer.next_chunk(256).map_err(stream_error)? else {
            return Ok(false);
        };
        self.arrived = Instant::now();
        let first_new = self.buffer.end();
        for t in 0..chunk.frames() {
            let frame = chunk.frame(t);
            for (c, row) in self.buffer.rows.iter_mut().enumerate() {
                row.push(frame[c]);
            }
        }
        // Events among the new samples (the step from the last sample seen before them).
        let stim_row = &self.buffer.rows[self.stim][first_new - self.buffer.start..];
        let mut series = Vec::with_capacity(stim_row.len() + 1);
        series.push(self.last_stim);
        series.extend(stim_row.iter().map(|&v| v as f64));
        self.last_stim = *series.last().unwrap_or(&self.last_stim);
        for (i, code) in find_events(&series) {
            self.pending.push((first_new + i - 1, code));
        }
        // Every trial whose epoch is complete.
        let end = self.buffer.end();
        let complete = |&(onset, _): &(usize, i64)| onset + span - before <= end;
        self.ready
            .extend(self.pending.iter().copied().filter(complete));
        self.pending.retain(|trial| !complete(trial));
        Ok(true)
    }

    /// The trial at `onset` (absolute sample) decoded, ranked and shown; `None` when its
    /// baseline lies before the recording or its epoch cannot be cut.
    fn decode_trial(&mut self, onset: usize, code: i64) -> Result<Option<LiveTrial>> {
        let (start, end) = (self.buffer.start, self.buffer.end());
        if onset < self.before + start {
            return Ok(None); // its baseline lies before the recording
        }
        let flat: Vec<f64> = self
            .picks
            .iter()
            .flat_map(|&c| self.buffer.rows[c].iter().map(|&v| v as f64))
            .collect();
        let channels: Vec<usize> = (0..self.picks.len()).collect();
        let Some(x) = self
            .epocher
            .epoch(&flat, end - start, &channels, onset - start)
        else {
            return Ok(None);
        };
        let decoded = self.decoder.decode(&self.features(x))?;
        // A NaN epoch or model is refused, not scored (brainrecon_metrics::rank).
        brainrecon_metrics::require_finite(
            &format!(
                "{}: the embedding decoded from the epoch at {:.3} s",
                self.decoder.dir.display(),
                onset as f64 / self.rate
            ),
            &decoded,
            self.d,
        )?;
        let similarity = cosine_similarities(&decoded, &self.decoder.candidates, self.d);
        let order = ranked(&similarity, 5);
        let seen = (code >= 1 && code as usize <= self.n_images).then(|| code as usize - 1);
        // Ties count against the seen image, as in `eeg eval`.
        let rank = seen.map(|s| brainrecon_metrics::match_rank(&similarity, s));
        self.show(onset, seen, &order);
        Ok(Some(LiveTrial {
            onset_s: onset as f64 / self.rate,
            code,
            top1: rank.map(|r| r <= 1),
            top5: rank.map(|r| r <= 5),
            ranked: order,
            latency_ms: self.arrived.elapsed().as_secs_f64() * 1e3,
        }))
    }

    /// An epoch as the decoder takes it: one condition, one repetition.
    fn features(&self, x: Vec<f64>) -> PreprocessedEeg {
        PreprocessedEeg {
            data: x.into_iter().map(|v| v as f32).collect(),
            conditions: 1,
            repetitions: 1,
            ch_names: self.decoder.meta.ch_names.clone(),
            times: self.epocher.times.clone(),
        }
    }

    /// Publishes the seen image (if any) beside the four ranked highest, when serving.
    fn show(&self, onset: usize, seen: Option<usize>, order: &[usize]) {
        let Some(hub) = &self.hub else {
            return;
        };
        let mut row: Vec<RgbImage> = Vec::new();
        if let Some(s) = seen {
            row.push(self.images[s].clone());
        }
        row.extend(order.iter().take(4).map(|&i| self.images[i].clone()));
        hub.publish(
            Arc::new(comparison_grid(&[row], 128)),
            None,
            FrameState {
                frames: self.trials.len() as u64 + 1,
                title: "brainrecon eeg live: seen | decoded (ranked)".into(),
                window_start_s: onset as f64 / self.rate,
                latency_ms: self.arrived.elapsed().as_secs_f64() * 1e3,
                status: "decoding".into(),
                ..FrameState::default()
            },
        );
    }

    /// Ends the session: the page says the recording ended and closes, and OUT/session.json
    /// is written.
    pub fn finish(mut self) -> Result<LiveEegReport> {
        if let Some(hub) = &self.hub {
            hub.set_status("recording ended", true);
        }
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
        let trials = std::mem::take(&mut self.trials);
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
        let request = self.request;
        let report = LiveEegReport {
            out: request.out.clone(),
            source: request.source.clone(),
            decoder: request.decoder.clone(),
            rate: self.rate,
            scored: scored.len(),
            top1: share(&|t| t.top1 == Some(true)),
            top5: share(&|t| t.top5 == Some(true)),
            chance_top1: 1.0 / self.n_images as f64,
            chance_top5: (5.0 / self.n_images as f64).min(1.0),
            latency_ms_median: quantile(0.5),
            latency_ms_p95: quantile(0.95),
            unfinished: self.pending.len(),
            trials,
        };
        write_folder_atomic(&request.out, |dir| -> Result<()> {
            Ok(write_json_atomic(&dir.join("session.json"), &report)?)
        })?;
        Ok(report)
    }
}

/// The decoder, which must have an even sampling rate to cut live epochs at.
fn open_decoder(request: &LiveEegRequest) -> Result<EegDecoder> {
    let decoder = EegDecoder::open(&request.decoder)?;
    let sfreq = decoder.meta.sfreq;
    if sfreq.is_nan() || sfreq <= 0.0 {
        return Err(RouteError::Usage(format!(
            "{}: the decoder's epochs have no even sampling rate to cut live epochs at",
            request.decoder.display()
        )));
    }
    Ok(decoder)
}

/// The test images' files, as many as the decoder ranks.
fn test_images(request: &LiveEegRequest, decoder: &EegDecoder) -> Result<Vec<PathBuf>> {
    let set = ThingsEeg2::open(&request.data)?;
    let metadata = set.image_metadata()?;
    let image_paths = set.image_paths(&metadata, Split::Test)?;
    let n_images = decoder.candidates.len() / decoder.meta.embeddings.width;
    if image_paths.len() != n_images {
        return Err(DataError::invalid(
            set.images.join("image_metadata.npy"),
            "test_img_files",
            format!("the {n_images} test images the decoder ranks"),
            format!("{} images", image_paths.len()),
        )
        .into());
    }
    Ok(image_paths)
}

/// The stim channel and the decoder's channels among the source's `labels`
/// (case-insensitive).
fn channel_picks(
    request: &LiveEegRequest,
    labels: &[String],
    meta: &DecoderMeta,
) -> Result<(usize, Vec<usize>)> {
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
    Ok((stim, picks))
}

/// The epoch: the decoder's first time and length, cut from a source at `rate` Hz and
/// resampled when the rates differ.
fn live_epocher(request: &LiveEegRequest, meta: &DecoderMeta, rate: f64) -> Result<Epocher> {
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
    Ok(epocher)
}

/// Decodes the recording (see the module documentation), serving the page when asked (its
/// address goes to `note`); `on_trial` sees each trial.
pub fn run_live(
    request: &LiveEegRequest,
    note: &dyn Fn(&str),
    mut on_trial: impl FnMut(&LiveTrial),
) -> Result<LiveEegReport> {
    let mut session = LiveEegSession::open(request, note)?;
    while let Some(event) = session.next_event()? {
        if let LiveEegEvent::Trial(trial) = &event {
            on_trial(trial);
        }
    }
    session.finish()
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
