//! The frame loop: windows → latents → frames, on three threads, with outputs and statistics.
//!
//! - **reader** (live mode only): reads the source, cuts windows, maps each to a latent and
//!   puts it in a one-place slot, replacing a latent that has not been taken yet (that window
//!   is *dropped*). The time a window's last sample arrived is kept with it.
//! - **denoise**: takes the newest latent and runs [`FrameGenerator::denoise`]; in replay mode
//!   (`keep_every_window`) it reads the windows itself, one after the other, so nothing is
//!   dropped and a run is reproducible.
//! - **decode**: on the thread that pulls [`LiveSession::next_event`], runs
//!   [`FrameGenerator::decode`] on the previous frame while the next one denoises (the
//!   hand-over is a rendezvous, so at most one frame waits), then writes the PNG sequence and
//!   the GIF and publishes the frame to the web page.
//!
//! Latency is measured from the window's end (its arrival) to the frame being ready.
//!
//! [`LiveSession`] is the loop pulled an event (a frame, the end) at a time; [`run_live`]
//! pulls it to its end.

use crate::error::StreamError;
use crate::frames::{encode_png, frame_hash, FrameGenerator, GenError, GifWriter, PngSequence};
use crate::latent::{Latent, SkipReason};
use crate::pipeline::LatentStream;
use crate::server::{FrameState, Hub};
use crate::source::Source;
use crate::window::Window;
use brainrecon_core::stats::quantile_nearest_rank;
use brainrecon_formats::image::RgbImage;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

/// Channels drawn on the page, and points per drawn trace.
const TRACE_CHANNELS: usize = 16;
const TRACE_POINTS: usize = 256;

/// A message for the user (a warning, the source's end).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// How [`run_live`] runs.
#[derive(Clone)]
pub struct LiveOptions {
    /// Generate a frame for every window, in order (a replay: reproducible, never drops).
    /// Otherwise windows that arrive while a frame is being made are dropped and the newest is
    /// used.
    pub keep_every_window: bool,
    /// Stop after this many frames.
    pub max_frames: Option<u64>,
    /// Latents generated together (at least 1). Live, the newest `batch` windows are kept and
    /// older ones dropped; with `keep_every_window`, consecutive windows are grouped.
    pub batch: usize,
    /// Batches denoised at once, each on its own thread (at least 1); frames still come out in
    /// window order. On a CPU whose cores one sampler run cannot keep busy, two workers make
    /// about twice the frames at the same latency.
    pub denoisers: usize,
    /// Write `frame-NNNNNN.png` here.
    pub png_dir: Option<PathBuf>,
    /// Write an animated GIF here.
    pub gif: Option<PathBuf>,
    /// GIF frame delay in hundredths of a second.
    pub gif_delay_cs: u16,
    /// Publish frames here (for the web page).
    pub hub: Option<Arc<Hub>>,
    /// The page's address, for messages.
    pub serve_url: Option<String>,
    /// When serving, keep the last frame on the page after the source ends, until `stop`;
    /// otherwise return when the source ends (the page says it ended).
    pub hold_last_frame: bool,
    /// Set (e.g. by Ctrl-C) to stop: the frame being made is finished and written.
    pub stop: Arc<AtomicBool>,
    /// The source's name in messages.
    pub source_name: String,
    /// Where warnings and notices go.
    pub log: Log,
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// `max_frames` frames were made.
    Frames,
    /// The source ended.
    SourceEnded,
    /// `stop` was set.
    Interrupted,
}

/// What a run did. Times are in seconds and milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Frames made.
    pub frames: u64,
    /// Windows cut from the source.
    pub windows: u64,
    /// Windows skipped because generation was slower than the hop.
    pub dropped: u64,
    /// Sustained rate: `(frames − 1) / (last frame − first frame)` (0 with fewer than 2).
    pub fps: f64,
    /// `frames / seconds from the first window to the last frame`.
    pub fps_overall: f64,
    /// Mean of the frames' [`FrameMade::latency_ms`] (0 without frames).
    pub latency_ms_mean: f64,
    /// Their 95th percentile, nearest rank (0 without frames).
    pub latency_ms_p95: f64,
    /// Their largest (0 without frames).
    pub latency_ms_max: f64,
    /// Seconds from the start until the first frame was ready.
    pub first_frame_s: f64,
    /// Seconds the whole run took.
    pub wall_s: f64,
    /// Why the run ended.
    pub ended: EndReason,
    /// [`frame_hash`] of the last frame.
    pub last_hash: Option<String>,
    /// Frames written to the PNG sequence.
    pub png_frames: u64,
    /// The animated GIF, when one was written.
    pub gif: Option<PathBuf>,
}

/// An error that ends a run.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Bad data or parameters (a user error).
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The generator failed.
    #[error("generating a frame: {0}")]
    Generator(GenError),
    /// An output could not be written.
    #[error("{}: {error}", .path.display())]
    Output {
        /// The file being written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        error: std::io::Error,
    },
}

/// A latent ready for the generator, with what the page shows of its window.
struct Item {
    latent: Latent,
    window_start_s: f64,
    labels: Vec<String>,
    traces: Vec<Vec<f32>>,
    /// When the window's last sample had arrived.
    ready: Instant,
}

/// Reads windows and latents, printing each kind of skipped-channel warning once per channel.
struct Feed<S: Source> {
    stream: LatentStream<S>,
    labels: Vec<String>,
    warned: HashSet<(usize, bool)>,
    windows: Arc<AtomicU64>,
    log: Log,
    name: String,
}

impl<S: Source> Feed<S> {
    fn next(&mut self) -> Result<Option<Item>, StreamError> {
        let Some((window, latent)) = self.stream.next_window_latent()? else {
            return Ok(None);
        };
        let ready = Instant::now();
        self.windows.fetch_add(1, Ordering::Relaxed);
        for warning in &latent.warnings {
            let non_finite = matches!(warning.reason, SkipReason::NonFinite { .. });
            if self.warned.insert((warning.channel, non_finite)) {
                let label = self
                    .labels
                    .get(warning.channel)
                    .map(String::as_str)
                    .unwrap_or("?");
                (self.log)(&format!(
                    "warning: {}: {warning} (channel label {label}; this warning is shown once \
                     per channel)",
                    self.name
                ));
            }
        }
        let (labels, traces) = traces(&window, &self.labels);
        Ok(Some(Item {
            window_start_s: window.start as f64 / self.stream.rate(),
            latent,
            labels,
            traces,
            ready,
        }))
    }
}

/// The first [`TRACE_CHANNELS`] channels of `window`, each decimated to at most
/// [`TRACE_POINTS`] points, with their labels.
fn traces(window: &Window, labels: &[String]) -> (Vec<String>, Vec<Vec<f32>>) {
    let step = window.samples.div_ceil(TRACE_POINTS).max(1);
    let shown = window.channels.len().min(TRACE_CHANNELS);
    let names = window.channels[..shown]
        .iter()
        .map(|&c| labels.get(c).cloned().unwrap_or_else(|| format!("ch{c}")))
        .collect();
    let rows = (0..shown)
        .map(|k| window.channel(k).into_iter().step_by(step).collect())
        .collect();
    (names, rows)
}

/// The newest latent, shared between the reader and the denoiser.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    changed: Condvar,
}

#[derive(Default)]
struct SlotState {
    items: VecDeque<Item>,
    ended: bool,
    error: Option<StreamError>,
    dropped: u64,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Input<S: Source> {
    /// Replay: the denoiser reads every window itself.
    Direct(Box<Feed<S>>),
    /// Live: the newest window from the reader thread.
    Newest(Arc<Slot>),
}

impl<S: Source> Input<S> {
    /// The next 1 to `max` latents to generate (live, the oldest of the few newest windows the
    /// reader keeps), `None` at the end of the source or on `halt`.
    fn next(
        &mut self,
        halt: &AtomicBool,
        stop: &AtomicBool,
        max: usize,
    ) -> Result<Option<Vec<Item>>, StreamError> {
        match self {
            Input::Direct(feed) => {
                let mut items = Vec::new();
                while items.len() < max {
                    match feed.next()? {
                        Some(item) => items.push(item),
                        None => break,
                    }
                }
                Ok((!items.is_empty()).then_some(items))
            }
            Input::Newest(slot) => {
                let mut state = slot.lock();
                loop {
                    if halt.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst) {
                        return Ok(None);
                    }
                    if !state.items.is_empty() {
                        // The reader keeps only as many windows as the denoisers take at once
                        // (older ones are dropped there): the oldest of those are next.
                        let n = max.min(state.items.len());
                        return Ok(Some(state.items.drain(..n).collect()));
                    }
                    if let Some(error) = state.error.take() {
                        return Err(error);
                    }
                    if state.ended {
                        return Ok(None);
                    }
                    state = slot
                        .changed
                        .wait_timeout(state, Duration::from_millis(50))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }
}

/// Batches numbered 0, 1, … by the denoisers, arriving in any order, handed out in number
/// order: each is held back until those before it have come.
struct InOrder<T> {
    waiting: BTreeMap<u64, T>,
    next: u64,
}

impl<T> InOrder<T> {
    fn new() -> InOrder<T> {
        InOrder {
            waiting: BTreeMap::new(),
            next: 0,
        }
    }

    fn push(&mut self, number: u64, batch: T) {
        self.waiting.insert(number, batch);
    }

    /// The next batch in number order, once it has come.
    fn pop(&mut self) -> Option<T> {
        let batch = self.waiting.remove(&self.next)?;
        self.next += 1;
        Some(batch)
    }
}

/// Where the denoising workers take their batches, one at a time.
struct Intake<S: Source> {
    input: Input<S>,
    /// Latents taken so far.
    started: u64,
    /// Batches taken so far (the next batch's number).
    batches: u64,
}

/// What a denoiser takes from the [`Intake`].
enum Taken {
    /// A batch to denoise and its number.
    Batch(u64, Vec<Item>),
    /// Nothing more; `source_ended` when the source ended (rather than a halt or the frame
    /// limit).
    Done { source_ended: bool },
}

impl<S: Source> Intake<S> {
    /// The next batch: at most `options.batch` latents, and no more than `max_frames` in all.
    fn take(&mut self, options: &LiveOptions, halt: &AtomicBool) -> Result<Taken, StreamError> {
        let left = options
            .max_frames
            .map_or(u64::MAX, |n| n.saturating_sub(self.started));
        if halt.load(Ordering::SeqCst) || left == 0 {
            return Ok(Taken::Done {
                source_ended: false,
            });
        }
        let max = left.min(options.batch as u64) as usize;
        let Some(items) = self.input.next(halt, &options.stop, max)? else {
            watch_stop(&options.stop, halt);
            return Ok(Taken::Done {
                source_ended: !halt.load(Ordering::SeqCst),
            });
        };
        self.started += items.len() as u64;
        self.batches += 1;
        Ok(Taken::Batch(self.batches - 1, items))
    }
}

/// Sets `halt` once `stop` is set, so that the slot wait and the denoisers see it.
fn watch_stop(stop: &AtomicBool, halt: &AtomicBool) {
    if stop.load(Ordering::SeqCst) {
        halt.store(true, Ordering::SeqCst);
    }
}

/// A denoised batch on its way to the decode stage: its number, its windows and what
/// [`FrameGenerator::denoise`] made of them.
type Denoised<G> = (u64, Vec<Item>, <G as FrameGenerator>::Denoised);

/// One denoising worker: takes batches from `intake` in turn, denoises them and hands them
/// over (a rendezvous) until there are none or the decode stage is gone. `Ok(true)` when it
/// found the source ended; an error sets `halt`.
fn denoise_batches<S: Source, G: FrameGenerator>(
    intake: &Mutex<Intake<S>>,
    generator: &G,
    options: &LiveOptions,
    halt: &AtomicBool,
    handover: SyncSender<Denoised<G>>,
) -> Result<bool, LiveError> {
    let result = (|| loop {
        watch_stop(&options.stop, halt);
        let taken = intake
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(options, halt)?;
        let (number, items) = match taken {
            Taken::Batch(number, items) => (number, items),
            Taken::Done { source_ended } => return Ok(source_ended),
        };
        let latents: Vec<Latent> = items.iter().map(|i| i.latent.clone()).collect();
        let out = generator.denoise(&latents).map_err(LiveError::Generator)?;
        if handover.send((number, items, out)).is_err() {
            return Ok(false);
        }
    })();
    if result.is_err() {
        halt.store(true, Ordering::SeqCst);
    }
    result
}

/// Starts the reader thread (live mode): it keeps the newest `keep` windows in `slot`,
/// counting the older ones it drops, until the source ends, fails or `halt` is set.
fn spawn_reader<S: Source + Send + 'static>(
    mut feed: Feed<S>,
    slot: Arc<Slot>,
    halt: Arc<AtomicBool>,
    keep: usize,
) -> Result<(), LiveError> {
    // Not joined: a reader blocked on a silent stdin or socket must not hold up the end.
    std::thread::Builder::new()
        .name("stream-reader".into())
        .spawn(move || loop {
            if halt.load(Ordering::SeqCst) {
                return;
            }
            let next = feed.next();
            let mut state = slot.lock();
            match next {
                Ok(Some(item)) => {
                    state.items.push_back(item);
                    if state.items.len() > keep {
                        state.items.pop_front();
                        state.dropped += 1;
                    }
                }
                Ok(None) => state.ended = true,
                Err(error) => state.error = Some(error),
            }
            let done = state.ended || state.error.is_some();
            drop(state);
            slot.changed.notify_all();
            if done {
                return;
            }
        })
        .map(drop)
        .map_err(|error| LiveError::Output {
            path: PathBuf::from("<reader thread>"),
            error,
        })
}

/// Statistics of the frames made.
#[derive(Default)]
struct Stats {
    frames: u64,
    latencies_ms: Vec<f64>,
    first_ready: Option<Instant>,
    last_ready: Option<Instant>,
    recent: VecDeque<Instant>,
    last_hash: Option<String>,
    png_frames: u64,
}

impl Stats {
    /// A frame ready at `ready`, `latency_ms` after its window's end.
    fn record(&mut self, ready: Instant, latency_ms: f64) {
        self.frames += 1;
        self.latencies_ms.push(latency_ms);
        self.first_ready.get_or_insert(ready);
        self.last_ready = Some(ready);
        self.recent.push_back(ready);
        if self.recent.len() > 30 {
            self.recent.pop_front();
        }
    }
}

/// Frames per second over the instants in `recent` (0 with fewer than 2).
fn rate_of(recent: &VecDeque<Instant>) -> f64 {
    match (recent.front(), recent.back()) {
        (Some(a), Some(b)) if recent.len() >= 2 && b > a => {
            (recent.len() - 1) as f64 / b.duration_since(*a).as_secs_f64()
        }
        _ => 0.0,
    }
}

/// A frame made: written to the PNG sequence and the GIF, and published to the page.
#[derive(Debug, Clone)]
pub struct FrameMade {
    /// 0-based, in window order (the PNG's number).
    pub index: u64,
    /// The frame itself.
    pub image: Arc<RgbImage>,
    /// [`frame_hash`] of the image.
    pub hash: String,
    /// From the window's last sample arriving to the frame being ready, in milliseconds.
    pub latency_ms: f64,
    /// The window's start, seconds from the source's start.
    pub window_start_s: f64,
}

/// What a [`LiveSession`] brings.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A frame was made.
    Frame(Box<FrameMade>),
    /// The loop ended (the last event): every frame begun is made and the GIF is written.
    Ended(EndReason),
}

/// Where a [`LiveSession`] stands.
enum Stage {
    Running,
    Ended {
        reason: EndReason,
        gif: Option<PathBuf>,
    },
    /// An error ended it (returned by `next`).
    Failed,
}

/// The frame loop, pulled a frame at a time: the reader and the denoisers run on threads of
/// the caller's scope, and [`LiveSession::next_event`] runs the decode stage (decode, write
/// the PNG and the GIF, publish to the page) on the caller's thread.
///
/// ```no_run
/// # use brainrecon_stream::live::{LiveEvent, LiveSession};
/// # use brainrecon_stream::{FrameGenerator, LatentStream, LiveError, LiveOptions, Source};
/// # fn run<S: Source + Send + 'static, G: FrameGenerator>(
/// #     stream: LatentStream<S>, generator: &G, options: &LiveOptions,
/// # ) -> Result<(), LiveError> {
/// std::thread::scope(|scope| {
///     let mut session = LiveSession::start(scope, stream, generator, options)?;
///     while let Some(event) = session.next_event()? {
///         if let LiveEvent::Frame(frame) = event {
///             println!("frame {}: {} ({:.0} ms)", frame.index, frame.hash, frame.latency_ms);
///         }
///     }
///     let summary = session.finish()?;
///     println!("{} frames of {} windows", summary.frames, summary.windows);
///     Ok(())
/// })
/// # }
/// ```
pub struct LiveSession<'scope, G: FrameGenerator> {
    generator: &'scope G,
    options: &'scope LiveOptions,
    start: Instant,
    /// Stops the reader and the denoisers: set on `stop`, after `max_frames`, on an error, and
    /// at the end.
    halt: Arc<AtomicBool>,
    slot: Arc<Slot>,
    windows: Arc<AtomicU64>,
    denoisers: Vec<ScopedJoinHandle<'scope, Result<bool, LiveError>>>,
    /// The denoisers' hand-over; `None` once the decode stage has stopped taking batches.
    handover: Option<Receiver<Denoised<G>>>,
    in_order: InOrder<(Vec<Item>, G::Denoised)>,
    /// Frames decoded and not yet written, with when they were ready.
    decoded: VecDeque<(Item, RgbImage, Instant)>,
    png: Option<PngSequence>,
    gif: Option<GifWriter>,
    stats: Stats,
    stage: Stage,
}

impl<'scope, G: FrameGenerator> LiveSession<'scope, G> {
    /// Checks the options against `stream` and `generator`, creates the outputs (the PNG
    /// folder, the GIF) and starts the reader (live mode) and the denoisers on `scope`.
    ///
    /// Errors: a `batch` or `denoisers` of 0, or a generator whose latent shape is not the
    /// stream's ([`LiveError::Stream`]); an output that cannot be created
    /// ([`LiveError::Output`]).
    pub fn start<'env, S>(
        scope: &'scope Scope<'scope, 'env>,
        stream: LatentStream<S>,
        generator: &'scope G,
        options: &'scope LiveOptions,
    ) -> Result<Self, LiveError>
    where
        S: Source + Send + 'static,
    {
        let start = Instant::now();
        check(&stream, generator, options)?;
        let (png, gif) = create_outputs(options)?;
        let windows = Arc::new(AtomicU64::new(0));
        let feed = Feed {
            labels: stream.labels(),
            stream,
            warned: HashSet::new(),
            windows: windows.clone(),
            log: options.log.clone(),
            name: options.source_name.clone(),
        };
        let halt = Arc::new(AtomicBool::new(false));
        let slot = Arc::new(Slot::default());
        let input = if options.keep_every_window {
            Input::Direct(Box::new(feed))
        } else {
            // Enough windows for every denoiser's next batch: a burst of windows goes to idle
            // workers instead of being dropped.
            let keep = options.batch * options.denoisers;
            spawn_reader(feed, slot.clone(), halt.clone(), keep)?;
            Input::Newest(slot.clone())
        };
        if let Some(hub) = &options.hub {
            let what = if options.keep_every_window {
                "replaying every window of"
            } else {
                "streaming"
            };
            hub.set_status(format!("{what} {}", options.source_name), false);
        }
        // Workers take batches in turn (numbered), denoise them concurrently and hand them
        // over; `next` puts them back in order.
        let intake = Arc::new(Mutex::new(Intake {
            input,
            started: 0,
            batches: 0,
        }));
        let (handover, batches) = mpsc::sync_channel::<Denoised<G>>(0);
        let denoisers = (0..options.denoisers)
            .map(|_| {
                let (handover, halt, intake) = (handover.clone(), halt.clone(), intake.clone());
                scope.spawn(move || denoise_batches(&intake, generator, options, &halt, handover))
            })
            .collect();
        Ok(LiveSession {
            generator,
            options,
            start,
            halt,
            slot,
            windows,
            denoisers,
            handover: Some(batches),
            in_order: InOrder::new(),
            decoded: VecDeque::new(),
            png,
            gif,
            stats: Stats::default(),
            stage: Stage::Running,
        })
    }

    /// The next event: a frame (waiting for it while the next batch denoises), then once,
    /// [`LiveEvent::Ended`]; `None` after that or after an error. An error ends the session
    /// (the denoisers are stopped; the first error of theirs wins over the decode stage's).
    pub fn next_event(&mut self) -> Result<Option<LiveEvent>, LiveError> {
        if !matches!(self.stage, Stage::Running) {
            return Ok(None);
        }
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.step())) {
            Ok(Ok(event)) => Ok(Some(event)),
            Ok(Err(error)) => Err(self.fail(error, false)),
            Err(_) => {
                let error = "the decoding thread panicked".to_string().into();
                Err(self.fail(LiveError::Generator(error), true))
            }
        }
    }

    /// Runs the loop to its end (frames still to come are made and written) and returns the
    /// summary.
    pub fn finish(mut self) -> Result<Summary, LiveError> {
        while self.next_event()?.is_some() {}
        match std::mem::replace(&mut self.stage, Stage::Failed) {
            Stage::Ended { reason, gif } => Ok(self.summary(reason, gif)),
            _ => Err(LiveError::Generator(
                "the frame loop had already failed".to_string().into(),
            )),
        }
    }

    /// The next frame written, or the end.
    fn step(&mut self) -> Result<LiveEvent, LiveError> {
        loop {
            if let Some((item, image, ready)) = self.decoded.pop_front() {
                let frame = self.write_frame(item, image, ready)?;
                return Ok(LiveEvent::Frame(Box::new(frame)));
            }
            match self.next_batch() {
                Some((items, out)) => self.decode(items, out)?,
                None => return self.end(),
            }
        }
    }

    /// The next denoised batch in window order; `None` once every denoiser has stopped.
    fn next_batch(&mut self) -> Option<(Vec<Item>, G::Denoised)> {
        loop {
            if let Some(batch) = self.in_order.pop() {
                return Some(batch);
            }
            let (number, items, out) = self.handover.as_ref()?.recv().ok()?;
            self.in_order.push(number, (items, out));
        }
    }

    /// Decodes a batch into `decoded`, one image per window.
    fn decode(&mut self, items: Vec<Item>, out: G::Denoised) -> Result<(), LiveError> {
        let images = self.generator.decode(out).map_err(LiveError::Generator)?;
        if images.len() != items.len() {
            return Err(LiveError::Generator(
                format!(
                    "{} images decoded from a batch of {} latents",
                    images.len(),
                    items.len()
                )
                .into(),
            ));
        }
        let ready = Instant::now();
        let frames = items.into_iter().zip(images);
        self.decoded
            .extend(frames.map(|(item, image)| (item, image, ready)));
        Ok(())
    }

    /// Counts a frame, writes it to the outputs and publishes it; halts the denoisers at
    /// `max_frames`.
    fn write_frame(
        &mut self,
        item: Item,
        image: RgbImage,
        ready: Instant,
    ) -> Result<FrameMade, LiveError> {
        let latency_ms = ready.duration_since(item.ready).as_secs_f64() * 1e3;
        let index = self.stats.frames;
        self.stats.record(ready, latency_ms);
        let hash = frame_hash(&image);
        let png = self.write_png(index, &image)?;
        if let Some(gif) = self.gif.as_mut() {
            gif.add(&image).map_err(|error| LiveError::Output {
                path: gif.path().to_path_buf(),
                error,
            })?;
        }
        let image = Arc::new(image);
        let frame = FrameMade {
            index,
            image: image.clone(),
            hash: hash.clone(),
            latency_ms,
            window_start_s: item.window_start_s,
        };
        if let Some(hub) = &self.options.hub {
            let dropped = self.slot.lock().dropped;
            let status = hub.state().status;
            let state = FrameState {
                frames: self.stats.frames,
                hash: hash.clone(),
                dropped,
                fps: rate_of(&self.stats.recent),
                latency_ms,
                window_start_s: item.window_start_s,
                status,
                ended: false,
                labels: item.labels,
                traces: item.traces,
                ..FrameState::default()
            };
            hub.publish(image, png, state);
        }
        self.stats.last_hash = Some(hash);
        if self
            .options
            .max_frames
            .is_some_and(|n| self.stats.frames >= n)
        {
            self.halt.store(true, Ordering::SeqCst);
        }
        Ok(frame)
    }

    /// Writes frame `index` to the PNG sequence, if any; its bytes for the page.
    fn write_png(
        &mut self,
        index: u64,
        image: &RgbImage,
    ) -> Result<Option<Arc<Vec<u8>>>, LiveError> {
        let Some(seq) = self.png.as_mut() else {
            return Ok(None);
        };
        let path = seq.path(index);
        let bytes = encode_png(image).map_err(|error| LiveError::Output { path, error })?;
        seq.write(index, &bytes)
            .map_err(|error| LiveError::Output {
                path: seq.path(index),
                error,
            })?;
        self.stats.png_frames += 1;
        Ok(Some(Arc::new(bytes)))
    }

    /// Every denoiser has stopped: joins them, writes the GIF and says why the loop ended.
    fn end(&mut self) -> Result<LiveEvent, LiveError> {
        let source_ended = self.stop_denoisers()??;
        let gif = match self.gif.take() {
            Some(writer) => {
                let path = writer.path().to_path_buf();
                let written = writer.finish().map_err(|error| LiveError::Output {
                    path: path.clone(),
                    error,
                })?;
                written.then_some(path)
            }
            None => None,
        };
        let reason = if self.options.stop.load(Ordering::SeqCst) {
            EndReason::Interrupted
        } else if self
            .options
            .max_frames
            .is_some_and(|n| self.stats.frames >= n)
        {
            EndReason::Frames
        } else if source_ended {
            EndReason::SourceEnded
        } else {
            EndReason::Interrupted
        };
        self.stage = Stage::Ended { reason, gif };
        Ok(LiveEvent::Ended(reason))
    }

    /// Ends the session on `error` of the decode stage (`panicked`: a panic there): the error
    /// returned is a denoiser's panic, then the decode stage's panic, then a denoiser's error,
    /// then `error`.
    fn fail(&mut self, error: LiveError, panicked: bool) -> LiveError {
        self.stage = Stage::Failed;
        match self.stop_denoisers() {
            Err(panic) => panic,
            Ok(Err(denoiser)) if !panicked => denoiser,
            Ok(_) => error,
        }
    }

    /// Halts and joins the denoisers: whether one found the source ended, or the first error
    /// (the outer one when a denoiser panicked).
    fn stop_denoisers(&mut self) -> Result<Result<bool, LiveError>, LiveError> {
        self.halt.store(true, Ordering::SeqCst);
        // A denoiser waiting to hand over a batch gives up.
        self.handover = None;
        std::mem::take(&mut self.denoisers)
            .into_iter()
            .map(|worker| worker.join())
            .try_fold(Ok(false), |ended, worker| {
                worker.map(|result| match (ended, result) {
                    (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                    (Ok(a), Ok(b)) => Ok(a || b),
                })
            })
            .map_err(|_| LiveError::Generator("a denoising thread panicked".to_string().into()))
    }

    /// The run's summary, ended for `reason`, with the GIF written (if any).
    fn summary(&mut self, reason: EndReason, gif: Option<PathBuf>) -> Summary {
        let stats = &self.stats;
        let start = self.start;
        Summary {
            frames: stats.frames,
            windows: self.windows.load(Ordering::Relaxed),
            dropped: self.slot.lock().dropped,
            fps: match (stats.first_ready, stats.last_ready) {
                (Some(a), Some(b)) if stats.frames >= 2 && b > a => {
                    (stats.frames - 1) as f64 / b.duration_since(a).as_secs_f64()
                }
                _ => 0.0,
            },
            fps_overall: match stats.last_ready {
                Some(last) if stats.frames > 0 => {
                    stats.frames as f64 / last.duration_since(start).as_secs_f64().max(1e-9)
                }
                _ => 0.0,
            },
            latency_ms_mean: if stats.latencies_ms.is_empty() {
                0.0
            } else {
                stats.latencies_ms.iter().sum::<f64>() / stats.latencies_ms.len() as f64
            },
            latency_ms_p95: quantile_nearest_rank(&stats.latencies_ms, 0.95),
            latency_ms_max: stats.latencies_ms.iter().copied().fold(0.0, f64::max),
            first_frame_s: stats
                .first_ready
                .map_or(0.0, |t| t.duration_since(start).as_secs_f64()),
            wall_s: start.elapsed().as_secs_f64(),
            ended: reason,
            last_hash: stats.last_hash.clone(),
            png_frames: stats.png_frames,
            gif,
        }
    }
}

impl<G: FrameGenerator> Drop for LiveSession<'_, G> {
    /// A session dropped before its end stops its reader and denoisers (the scope joins them).
    fn drop(&mut self) {
        self.halt.store(true, Ordering::SeqCst);
    }
}

/// The options' batch and denoisers, and the generator's latent shape against the stream's.
fn check<S: Source, G: FrameGenerator>(
    stream: &LatentStream<S>,
    generator: &G,
    options: &LiveOptions,
) -> Result<(), LiveError> {
    if options.batch == 0 {
        return Err(StreamError::parameter("batch", "at least 1", "0").into());
    }
    if options.denoisers == 0 {
        return Err(StreamError::parameter("denoisers", "at least 1", "0").into());
    }
    let shape = stream.mapper().shape();
    if shape != generator.latent_shape() {
        return Err(StreamError::parameter(
            "latent shape",
            format!("the generator's {:?}", generator.latent_shape()),
            format!("{shape:?}"),
        )
        .into());
    }
    Ok(())
}

/// The PNG sequence and the GIF asked for, created.
fn create_outputs(
    options: &LiveOptions,
) -> Result<(Option<PngSequence>, Option<GifWriter>), LiveError> {
    let png = match &options.png_dir {
        Some(dir) => Some(PngSequence::create(dir).map_err(|error| LiveError::Output {
            path: dir.clone(),
            error,
        })?),
        None => None,
    };
    let gif = match &options.gif {
        Some(path) => Some(
            GifWriter::create(path, options.gif_delay_cs).map_err(|error| LiveError::Output {
                path: path.clone(),
                error,
            })?,
        ),
        None => None,
    };
    Ok((png, gif))
}

/// Runs the loop on `stream` with `generator` until the source ends, `max_frames` frames are
/// made, or `options.stop` is set; then, when serving with `hold_last_frame`, keeps the last
/// frame on the page until `stop`. Outputs are complete files whatever ends the run (the GIF is
/// written at the end).
pub fn run_live<S, G>(
    stream: LatentStream<S>,
    generator: &G,
    options: &LiveOptions,
) -> Result<Summary, LiveError>
where
    S: Source + Send + 'static,
    G: FrameGenerator,
{
    let summary = std::thread::scope(|scope| {
        let mut session = LiveSession::start(scope, stream, generator, options)?;
        while let Some(_event) = session.next_event()? {}
        session.finish()
    })?;
    if summary.ended == EndReason::SourceEnded {
        announce_source_end(&summary, options);
    }
    Ok(summary)
}

/// Says that the source ended, on the page and to the log; when serving with
/// `hold_last_frame`, keeps the last frame on the page until `stop`.
fn announce_source_end(summary: &Summary, options: &LiveOptions) {
    match (&options.hub, &options.serve_url) {
        (Some(hub), Some(url)) if options.hold_last_frame => {
            let last = match summary.frames {
                0 => "no frame was made".to_string(),
                n => format!("frame {} stays", n - 1),
            };
            let message = format!(
                "{} ended after {} windows; {last}; serving it at {url} until Ctrl-C",
                options.source_name, summary.windows
            );
            // The page first, so that whoever reads the message finds the page saying so.
            hub.set_status(format!("source ended: {message}"), true);
            (options.log)(&message);
            while !options.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        (hub, _) => {
            let message = format!(
                "{} ended after {} windows, {} frames",
                options.source_name, summary.windows, summary.frames
            );
            if let Some(hub) = hub {
                hub.set_status(format!("source ended: {message}"), true);
            }
            (options.log)(&message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latent::LatentMapper;
    use crate::source::{default_labels, Recording};
    use crate::synthetic::{Synthetic, SyntheticSpec};
    use crate::window::WindowSpec;
    use brainrecon_formats::image::RgbImage;

    /// A test stand-in for a diffusion model, documented as such: a deterministic function of
    /// the latent (each pixel's grey level from one latent value), with an optional delay to
    /// act slower than the hop. The CLI tests run the real model.
    struct Greys {
        delay: Duration,
    }

    /// Greys whose denoising takes 0–18 ms depending on the latent, so that concurrent workers
    /// finish out of order.
    struct UnevenGreys;

    impl FrameGenerator for UnevenGreys {
        type Denoised = Vec<Vec<f32>>;
        fn latent_shape(&self) -> [usize; 3] {
            [1, 4, 4]
        }
        fn denoise(&self, latents: &[Latent]) -> Result<Vec<Vec<f32>>, GenError> {
            let jitter = latents[0].values[0].to_bits() % 7;
            std::thread::sleep(Duration::from_millis(3 * jitter as u64));
            Greys {
                delay: Duration::ZERO,
            }
            .denoise(latents)
        }
        fn decode(&self, batch: Vec<Vec<f32>>) -> Result<Vec<RgbImage>, GenError> {
            Greys {
                delay: Duration::ZERO,
            }
            .decode(batch)
        }
    }

    impl FrameGenerator for Greys {
        type Denoised = Vec<Vec<f32>>;
        fn latent_shape(&self) -> [usize; 3] {
            [1, 4, 4]
        }
        fn denoise(&self, latents: &[Latent]) -> Result<Vec<Vec<f32>>, GenError> {
            std::thread::sleep(self.delay);
            Ok(latents.iter().map(|l| l.values.clone()).collect())
        }
        fn decode(&self, batch: Vec<Vec<f32>>) -> Result<Vec<RgbImage>, GenError> {
            Ok(batch
                .iter()
                .map(|values| {
                    let pixels = values
                        .iter()
                        .flat_map(|v| {
                            let g = ((v * 40.0) + 128.0).clamp(0.0, 255.0) as u8;
                            [g, g, g]
                        })
                        .collect();
                    RgbImage::new(4, 4, pixels)
                })
                .collect())
        }
    }

    fn options(keep: bool) -> LiveOptions {
        LiveOptions {
            keep_every_window: keep,
            max_frames: None,
            batch: 1,
            denoisers: 1,
            png_dir: None,
            gif: None,
            gif_delay_cs: 3,
            hub: None,
            serve_url: None,
            hold_last_frame: false,
            stop: Arc::new(AtomicBool::new(false)),
            source_name: "test".into(),
            log: Arc::new(|_| {}),
        }
    }

    fn stream(frames: u64) -> LatentStream<Synthetic> {
        let source = Synthetic::new(SyntheticSpec {
            channels: 3,
            rate: 60.0,
            frames: Some(frames),
            ..SyntheticSpec::default()
        })
        .unwrap();
        LatentStream::new(
            source,
            &WindowSpec::default(),
            LatentMapper::new([1, 4, 4], 0).unwrap(),
            None,
        )
        .unwrap()
    }

    /// 2 s of 2-channel signal at 120 Hz, paced in real time: windows every 1/30 s from 1 s on,
    /// 31 of them over about 1 s.
    fn live_stream() -> LatentStream<crate::pacer::Pacer<Synthetic>> {
        let source = crate::pacer::Pacer::new(
            Synthetic::new(SyntheticSpec {
                channels: 2,
                rate: 120.0,
                frames: Some(240),
                ..SyntheticSpec::default()
            })
            .unwrap(),
            crate::pacer::Pace::RealTime,
        );
        LatentStream::new(
            source,
            &WindowSpec::default(),
            LatentMapper::new([1, 4, 4], 0).unwrap(),
            None,
        )
        .unwrap()
    }

    fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_replay_makes_one_frame_per_window_and_repeats_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let generator = Greys {
            delay: Duration::ZERO,
        };
        let mut runs = Vec::new();
        for run in 0..2 {
            let mut opts = options(true);
            opts.png_dir = Some(dir.path().join(format!("run{run}")));
            opts.gif = Some(dir.path().join(format!("run{run}.gif")));
            let summary = run_live(stream(120), &generator, &opts).unwrap();
            // 120 frames at 60 Hz: 1 s windows every 2 frames, starts 0..=60.
            assert_eq!(summary.frames, 31);
            assert_eq!(summary.windows, 31);
            assert_eq!(summary.dropped, 0);
            assert_eq!(summary.ended, EndReason::SourceEnded);
            assert_eq!(summary.png_frames, 31);
            assert!(summary.gif.is_some());
            runs.push(files(opts.png_dir.as_ref().unwrap()));
        }
        assert_eq!(runs[0].len(), 31);
        assert_eq!(runs[0], runs[1]);
        assert_eq!(runs[0][0].0, "frame-000000.png");
        assert_eq!(
            std::fs::read(dir.path().join("run0.gif")).unwrap(),
            std::fs::read(dir.path().join("run1.gif")).unwrap()
        );
        // Only the outputs: no temporary file anywhere.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["run0", "run0.gif", "run1", "run1.gif"]);
    }

    #[test]
    fn a_slow_generator_drops_windows_and_keeps_up_with_the_source() {
        // 2 s of signal at real speed, a window every 1/30 s, frames taking 100 ms: about 10
        // frames a second, the other windows dropped.
        let generator = Greys {
            delay: Duration::from_millis(100),
        };
        let started = Instant::now();
        let summary = run_live(live_stream(), &generator, &options(false)).unwrap();
        let elapsed = started.elapsed();
        // 240 frames at 120 Hz: windows from 1 s to 2 s, 31 of them, over about 1 s.
        assert_eq!(summary.windows, 31);
        assert!(summary.dropped >= 15, "{summary:?}");
        assert!(summary.frames + summary.dropped <= 31, "{summary:?}");
        assert!(summary.frames >= 5, "{summary:?}");
        // It does not fall behind: done soon after the source (2 s), where making a frame of
        // every window would take 1 s + 31 × 100 ms.
        assert!(elapsed < Duration::from_millis(3500), "{elapsed:?}");
        assert!(summary.latency_ms_p95 < 600.0, "{summary:?}");
    }

    #[test]
    fn batches_make_the_same_frames_and_keep_up_when_slow() {
        let generator = Greys {
            delay: Duration::ZERO,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut outputs = Vec::new();
        for batch in [1, 4] {
            let mut opts = options(true);
            opts.batch = batch;
            opts.png_dir = Some(dir.path().join(format!("b{batch}")));
            let summary = run_live(stream(120), &generator, &opts).unwrap();
            assert_eq!((summary.frames, summary.dropped), (31, 0));
            outputs.push(files(opts.png_dir.as_ref().unwrap()));
        }
        assert_eq!(outputs[0], outputs[1]);
        let mut opts = options(true);
        opts.batch = 4;
        opts.max_frames = Some(6);
        assert_eq!(run_live(stream(600), &generator, &opts).unwrap().frames, 6);
        opts.batch = 0;
        assert!(run_live(stream(600), &generator, &opts).is_err());
    }

    #[test]
    fn batches_come_out_in_number_order() {
        fn in_order(arrived: &[(u64, char)]) -> String {
            let mut order = InOrder::new();
            let mut ordered = String::new();
            for &(number, batch) in arrived {
                order.push(number, batch);
                while let Some(batch) = order.pop() {
                    ordered.push(batch);
                }
            }
            ordered
        }
        let arrived = [(2, 'c'), (0, 'a'), (1, 'b'), (4, 'e'), (3, 'd')];
        assert_eq!(in_order(&arrived), "abcde");
        // One missing (a failed worker) holds back those after it.
        assert_eq!(in_order(&[(0, 'a'), (2, 'c')]), "a");
    }

    #[test]
    fn concurrent_denoisers_keep_window_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut outputs = Vec::new();
        for denoisers in [1, 3] {
            let mut opts = options(true);
            opts.denoisers = denoisers;
            opts.png_dir = Some(dir.path().join(format!("d{denoisers}")));
            let summary = run_live(stream(120), &UnevenGreys, &opts).unwrap();
            assert_eq!((summary.frames, summary.dropped), (31, 0));
            assert_eq!(summary.ended, EndReason::SourceEnded);
            outputs.push(files(opts.png_dir.as_ref().unwrap()));
        }
        assert_eq!(outputs[0], outputs[1]);
        let mut opts = options(true);
        opts.denoisers = 3;
        opts.max_frames = Some(7);
        assert_eq!(
            run_live(stream(600), &UnevenGreys, &opts).unwrap().frames,
            7
        );
        opts.denoisers = 0;
        assert!(run_live(stream(600), &UnevenGreys, &opts).is_err());
    }

    #[test]
    fn concurrent_denoisers_make_more_frames_of_a_live_source() {
        // As in the slow-generator test (frames take 100 ms, windows every 1/30 s for 1 s):
        // three workers make frames about three times as often.
        let generator = Greys {
            delay: Duration::from_millis(100),
        };
        let one = run_live(live_stream(), &generator, &options(false)).unwrap();
        let mut opts = options(false);
        opts.denoisers = 3;
        let three = run_live(live_stream(), &generator, &opts).unwrap();
        assert!(three.frames >= one.frames + 6, "{one:?}\n{three:?}");
        assert!(three.frames + three.dropped <= 31, "{three:?}");
        assert!(three.latency_ms_p95 < 600.0, "{three:?}");
    }

    #[test]
    fn frames_limit_and_stop_end_the_run() {
        let generator = Greys {
            delay: Duration::ZERO,
        };
        let mut opts = options(true);
        opts.max_frames = Some(5);
        let summary = run_live(stream(600), &generator, &opts).unwrap();
        assert_eq!((summary.frames, summary.ended), (5, EndReason::Frames));

        let opts = options(false);
        opts.stop.store(true, Ordering::SeqCst);
        let summary = run_live(stream(600), &generator, &opts).unwrap();
        assert_eq!(summary.ended, EndReason::Interrupted);
    }

    /// Runs `run_live` on a 120-frame source with a hub, on a thread; `None` when it has not
    /// returned within `wait`.
    fn serve_and_end(hold: bool, wait: Duration) -> (Option<Summary>, Arc<Hub>, Arc<AtomicBool>) {
        let hub = Hub::new();
        let mut opts = options(true);
        opts.hub = Some(hub.clone());
        opts.serve_url = Some("http://127.0.0.1:1/".into());
        opts.hold_last_frame = hold;
        let stop = opts.stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let generator = Greys {
                delay: Duration::ZERO,
            };
            let _ = tx.send(run_live(stream(120), &generator, &opts).unwrap());
        });
        let summary = rx.recv_timeout(wait).ok();
        if summary.is_none() {
            stop.store(true, Ordering::SeqCst);
            rx.recv_timeout(Duration::from_secs(30)).unwrap();
        }
        (summary, hub, stop)
    }

    #[test]
    fn the_page_holds_the_last_frame_only_when_asked() {
        // Not held: the run returns when the source ends, and the page says it ended.
        let (summary, hub, _) = serve_and_end(false, Duration::from_secs(60));
        let summary = summary.expect("the run returned at the end of the source");
        assert_eq!(summary.ended, EndReason::SourceEnded);
        let state = hub.state();
        assert!(
            state.ended && state.status.contains("source ended"),
            "{state:?}"
        );
        // Held: still serving after a while, and it returns once stopped.
        let (summary, hub, stop) = serve_and_end(true, Duration::from_millis(1500));
        assert!(summary.is_none(), "returned without a stop: {summary:?}");
        assert!(stop.load(Ordering::SeqCst));
        assert!(hub.state().status.contains("until Ctrl-C"));
    }

    #[test]
    fn an_unusable_window_is_an_error_and_a_nan_channel_a_warning() {
        let generator = Greys {
            delay: Duration::ZERO,
        };
        let spec = WindowSpec::default();
        let nan = Recording::new("nan.csv", 30.0, default_labels(2), vec![f32::NAN; 120]).unwrap();
        let stream =
            LatentStream::new(nan, &spec, LatentMapper::new([1, 4, 4], 0).unwrap(), None).unwrap();
        let err = run_live(stream, &generator, &options(false)).unwrap_err();
        assert!(matches!(
            err,
            LiveError::Stream(StreamError::NoUsableChannel { .. })
        ));

        let data: Vec<f32> = (0..60)
            .flat_map(|t| [f32::NAN, (t as f32 * 0.7).sin()])
            .collect();
        let half = Recording::new("half.csv", 30.0, default_labels(2), data).unwrap();
        let stream =
            LatentStream::new(half, &spec, LatentMapper::new([1, 4, 4], 0).unwrap(), None).unwrap();
        let messages = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut opts = options(true);
        let sink = messages.clone();
        opts.log = Arc::new(move |m| sink.lock().unwrap().push(m.to_string()));
        let summary = run_live(stream, &generator, &opts).unwrap();
        assert_eq!(summary.frames, 31);
        let messages = messages.lock().unwrap();
        let warnings: Vec<_> = messages.iter().filter(|m| m.contains("warning")).collect();
        assert_eq!(warnings.len(), 1, "{messages:?}");
        assert!(warnings[0].contains("channel 0") && warnings[0].contains("NaN"));
    }

    #[test]
    fn a_generator_of_another_shape_is_refused() {
        struct Other;
        impl FrameGenerator for Other {
            type Denoised = ();
            fn latent_shape(&self) -> [usize; 3] {
                [4, 8, 8]
            }
            fn denoise(&self, _: &[Latent]) -> Result<(), GenError> {
                Ok(())
            }
            fn decode(&self, _: ()) -> Result<Vec<RgbImage>, GenError> {
                Ok(vec![RgbImage::new(1, 1, vec![0; 3])])
            }
        }
        assert!(run_live(stream(120), &Other, &options(true)).is_err());
    }
}
