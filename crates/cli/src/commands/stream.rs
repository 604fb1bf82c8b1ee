//! `brainrecon stream`: any multichannel time series to images in real time (Yamashiro,
//! Matsumoto & Ikegaya 2024). The signal side (sources, windows, window → latent, the frame
//! loop, outputs and the web page) is `brainrecon-stream`, the diffusion model as its frame
//! generator and the whole run `brainrecon_routes::stream::run_stream`; this file turns flags
//! into its options and prints.

use crate::commands::prelude::*;
use brainrecon_diffusion::scheduler::SchedulerKind;
use brainrecon_routes::stream::{run_stream, StreamOptions, StreamRunError};
use brainrecon_stream::Smoother;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Turn a multichannel time series into images in real time.
///
/// Each window of signal (1 s by default, a new one every 1/30 s) becomes the initial noise x_T
/// of the diffusion model, which is denoised in a few DDIM steps and decoded; the decode of one
/// frame runs while the next one denoises. Live, when making a frame takes longer than the
/// hop, windows are dropped and the newest one is always used; `--fast` replays a recording as
/// fast as frames can be made, one frame per window, the same frames on every run.
///
/// The window → latent map: each channel is z-scored over the window (channels with NaN or
/// infinite values, or flat ones, are skipped with a warning), resampled by linear
/// interpolation so that the channels fill the latent, concatenated, standardised to mean 0 and
/// variance 1, and permuted by a fixed permutation drawn from `--seed`. The same window always
/// gives the same latent, and the same frame.
///
/// Sources: a file (.npy, .csv, .edf/.bdf, .nwb; raw .i16/.f32, or any name with --format),
/// `synthetic` (seeded oscillators plus noise), `stdin` or `tcp://HOST:PORT` (raw interleaved
/// little-endian frames: give --channels, --rate and --format).
///
/// EDF/BDF signals of different rates (EEG at 256 Hz beside ECG at 512 Hz) are all given at
/// the highest rate among the chosen signals (--select, else all): the slower ones are
/// resampled with a band-limited filter (Kaiser-windowed sinc), as MNE does. Select signals
/// of one rate to read them unchanged.
///
/// A file written to --out or --gif ends the command when the file ends (--serve keeps the
/// page open on the last frame until Ctrl-C). When a live source stops, the page keeps the
/// last frame until Ctrl-C. Ctrl-C or SIGTERM ends the run cleanly: every PNG is whole and the
/// GIF is completed.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon stream --source synthetic --channels 8 --rate 250\n      (then open http://127.0.0.1:8080/)\n  brainrecon stream --source recording.edf --select Fp1,Fp2,O1,O2 --fast --out frames/ --gif stream.gif --no-serve\n  nc -l 9000 | brainrecon stream --source stdin --channels 16 --rate 500 --format f32\n  brainrecon stream --source synthetic --fast --frames 300 --json --no-serve"
)]
pub struct Args {
    /// PATH, synthetic, stdin or tcp://HOST:PORT
    #[arg(long)]
    source: String,
    /// Channel count (raw, stdin and TCP sources; synthetic: default 8)
    #[arg(long)]
    channels: Option<usize>,
    /// Sample rate in Hz (raw, .npy, CSV, stdin and TCP sources; synthetic: default 250)
    #[arg(long)]
    rate: Option<f64>,
    /// Sample format of raw, stdin and TCP sources: i16 or f32 (for files also npy, csv, edf,
    /// nwb; default: from the extension)
    #[arg(long)]
    format: Option<String>,
    /// Replay as fast as frames can be made, one frame per window (reproducible)
    #[arg(long)]
    fast: bool,
    /// Diffusers folder, cache snapshot, cached model id, or shapes-ldm (built in)
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// Serve the live page on this address [default: 127.0.0.1:8080, or a free port when that
    /// one is taken]; given, it also keeps the page open on the last frame after a file ends
    #[arg(long, value_name = "ADDRESS", conflicts_with = "no_serve")]
    serve: Option<String>,
    /// Do not serve the page
    #[arg(long)]
    no_serve: bool,
    /// Write every frame as DIR/frame-NNNNNN.png
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write an animated GIF of the frames (completed at the end)
    #[arg(long)]
    gif: Option<PathBuf>,
    /// Denoising steps per frame
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// ddim (eta 0), euler or euler-a
    #[arg(long, default_value = "ddim")]
    scheduler: String,
    /// Classifier-free guidance scale (≤ 1: none, one U-Net pass per step)
    #[arg(long, default_value_t = 0.0)]
    guidance: f64,
    /// Seed of the latent permutation, the sampler's noise and the synthetic source
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The prompt (encoded once)
    #[arg(long, default_value = "")]
    prompt: String,
    /// Image size in pixels (default: the model's)
    #[arg(long)]
    size: Option<usize>,
    /// Window length in seconds
    #[arg(long, default_value_t = 1.0)]
    window: f64,
    /// Seconds between windows (default 1/30 s, or one sample for sources below 30 Hz)
    #[arg(long)]
    hop: Option<f64>,
    /// Channels to use: indices, ranges and labels, e.g. 0-3,Fp1 (EDF/BDF: the signals to read,
    /// resampled to the highest rate among them)
    #[arg(long)]
    select: Option<String>,
    /// Blend successive latents: 1 is none, smaller is smoother
    #[arg(long)]
    smooth: Option<f32>,
    /// Stop after this many frames
    #[arg(long)]
    frames: Option<u64>,
    /// Windows generated together in one sampler run (more frames per second, more latency;
    /// live, the newest N windows)
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Frames denoised at once, each on its own thread (default: 2 on the CPU, where one
    /// small sampler run cannot keep two cores busy; 1 on a GPU)
    #[arg(long)]
    denoisers: Option<usize>,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    dtype: DtypeArgs,
    #[command(flatten)]
    json: JsonArg,
}

/// Ctrl-C or SIGTERM ends the run after the current frame; a second one ends it at once.
fn on_signals(stop: &Arc<AtomicBool>) {
    let stop = stop.clone();
    // Installing fails only when a handler is already set (a second run in one process),
    // which then still sets a flag of its own.
    let _ = ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("stopping: finishing the current frame (Ctrl-C again to quit at once)");
    });
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_sampling(args.steps, args.guidance)?;
    if args.batch == 0 || args.batch > 64 {
        return Err(usage(format!(
            "--batch: expected 1 to 64, found {}",
            args.batch
        )));
    }
    if args.frames == Some(0) {
        return Err(usage("--frames: expected at least 1, found 0"));
    }
    let scheduler =
        SchedulerKind::parse(&args.scheduler).map_err(|e| usage(format!("--scheduler: {e}")))?;
    let smoother = args.smooth.map(Smoother::new).transpose();
    let smoother = smoother.map_err(|e| usage(e.to_string()))?;
    let dtype = args.dtype.dtype()?;
    let device = args.device.device()?;
    check_dtype_on(dtype, &device)?;
    let report = run_stream(StreamOptions {
        source: args.source,
        channels: args.channels,
        rate: args.rate,
        format: args.format,
        select: args.select,
        seed: args.seed,
        fast: args.fast,
        model: args.model,
        serve: args.serve,
        no_serve: args.no_serve,
        out: args.out,
        gif: args.gif,
        steps: args.steps,
        scheduler,
        guidance: args.guidance,
        prompt: args.prompt,
        size: args.size,
        window: args.window,
        hop: args.hop,
        smoother,
        frames: args.frames,
        batch: args.batch,
        denoisers: args.denoisers,
        device,
        dtype,
        stop: Arc::new(AtomicBool::new(false)),
        on_signals: Some(on_signals),
        log: Arc::new(|message: &str| eprintln!("{message}")),
    })
    .map_err(|e| match e {
        StreamRunError::Route(e) => anyhow::Error::from(e),
        StreamRunError::Live(e) => e.into(),
    })?;
    super::report(args.json.json, &report.json()?, |_| report.text())
}
