//! `brainrecon stream`: any multichannel time series to images in real time (Yamashiro,
//! Matsumoto & Ikegaya 2024). The signal side (sources, windows, window → latent, the frame
//! loop, outputs and the web page) is `brainrecon-stream`, the diffusion model as its frame
//! generator and the whole run `brainrecon_routes::stream::run_stream`; this file turns flags
//! into its options and prints.

use crate::commands::prelude::*;
use brainrecon_routes::stream::{run_stream, StreamOptions, StreamRunError};
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
    #[command(flatten)]
    options: StreamOptions,
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
    let options = args.options;
    check_sampling(options.steps, options.guidance)?;
    if options.batch == 0 || options.batch > 64 {
        return Err(usage(format!(
            "--batch: expected 1 to 64, found {}",
            options.batch
        )));
    }
    if options.frames == Some(0) {
        return Err(usage("--frames: expected at least 1, found 0"));
    }
    let dtype = args.dtype.dtype()?;
    let device = args.device.device()?;
    check_dtype_on(dtype, &device)?;
    let report = run_stream(StreamOptions {
        device,
        dtype,
        stop: Arc::new(AtomicBool::new(false)),
        on_signals: Some(on_signals),
        log: Arc::new(|message: &str| eprintln!("{message}")),
        ..options
    })
    .map_err(|e| match e {
        StreamRunError::Route(e) => anyhow::Error::from(e),
        StreamRunError::Live(e) => e.into(),
    })?;
    super::report(args.json.json, &report.json()?, |_| report.text())
}
