//! `brainrecon stream`: any multichannel time series to images in real time (Yamashiro,
//! Matsumoto & Ikegaya 2024). The signal side (sources, windows, window → latent, the frame
//! loop, outputs and the web page) is `brainrecon-stream`, the diffusion model as its frame
//! generator `brainrecon_routes::stream`; this file turns flags into both.

use super::usage;
use brainrecon_data::DataError;
use brainrecon_diffusion::pipeline::{DType, StableDiffusion};
use brainrecon_diffusion::scheduler::SchedulerKind;
use brainrecon_routes::stream::{size_unit, DiffusionFrames, DiffusionFramesOptions, StreamRun};
use brainrecon_stream::named::{open_named, NamedSource, NamedSourceError, NamedSourceOptions};
use brainrecon_stream::window::parse_channels;
use brainrecon_stream::{
    run_live, serve, EndReason, FrameGenerator, Hub, LatentMapper, LatentStream, LiveError,
    LiveOptions, Pace, Pacer, Server, Smoother, Source, StreamError, WindowSpec,
};
use std::path::PathBuf;
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
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Weights' precision: f32, f16, or bf16 (GPU only)
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

/// Where the page is served without --serve.
const DEFAULT_SERVE: &str = "127.0.0.1:8080";

/// Serves the page on `address`, or on [`DEFAULT_SERVE`] when none was given; when that one is
/// taken (another stream, another program), on a free port instead.
pub(super) fn start_server(address: Option<&str>, hub: &Arc<Hub>) -> anyhow::Result<Server> {
    let failed = |address: &str, e: std::io::Error| {
        usage(format!(
            "--serve {address}: {e} (pick another address, or --no-serve)"
        ))
    };
    match address {
        Some(address) => serve(address, hub.clone()).map_err(|e| failed(address, e)),
        None => match serve(DEFAULT_SERVE, hub.clone()) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                eprintln!("note: {DEFAULT_SERVE} is in use; serving on a free port instead");
                serve("127.0.0.1:0", hub.clone()).map_err(|e| failed("127.0.0.1:0", e))
            }
            other => other.map_err(|e| failed(DEFAULT_SERVE, e)),
        },
    }
}

/// Stream errors are about the user's data or parameters: exit code 2.
fn user(error: StreamError) -> anyhow::Error {
    usage(error.to_string())
}

/// The source `--source` names.
fn open_source(args: &Args) -> anyhow::Result<NamedSource> {
    let options = NamedSourceOptions {
        channels: args.channels,
        rate: args.rate,
        format: args.format.clone(),
        select: args.select.clone(),
        seed: args.seed,
    };
    let opened = open_named(&args.source, &options).map_err(|e| match e {
        NamedSourceError::Data(e) => anyhow::Error::from(e),
        other => usage(other.to_string()),
    })?;
    for note in &opened.notes {
        eprintln!("{note}");
    }
    Ok(opened)
}

// `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
#[allow(clippy::manual_is_multiple_of)]
pub fn run(args: Args) -> anyhow::Result<()> {
    super::check_sampling(args.steps, args.guidance)?;
    if args.batch == 0 || args.batch > 64 {
        return Err(usage(format!(
            "--batch: expected 1 to 64, found {}",
            args.batch
        )));
    }
    if args.frames == Some(0) {
        return Err(usage("--frames: expected at least 1, found 0"));
    }
    let scheduler_kind =
        SchedulerKind::parse(&args.scheduler).map_err(|e| usage(format!("--scheduler: {e}")))?;
    let smoother = match args.smooth {
        Some(alpha) => Some(Smoother::new(alpha).map_err(user)?),
        None => None,
    };
    let dtype: DType = super::dtype(&args.dtype)?;
    let device = super::device(&args.device)?;
    super::check_dtype_on(dtype, &device)?;
    let denoisers = args
        .denoisers
        .unwrap_or(if device.is_cpu() { 2 } else { 1 });
    if denoisers == 0 || denoisers > 16 {
        return Err(usage(format!(
            "--denoisers: expected 1 to 16, found {denoisers}"
        )));
    }
    let own_pools = device.is_cpu() && denoisers > 1;
    if own_pools && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // candle's elementwise ops on large tensors go to one process-wide pool of spinning
        // threads; with a thread per stage they would queue there and spin on the cores the
        // stages need. Set before the first such op.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }

    let NamedSource {
        source,
        name: source_name,
        live,
        selected,
        ..
    } = open_source(&args)?;
    let rate = source.rate();
    let hop = match args.hop {
        Some(hop) => hop,
        None if rate < 30.0 => {
            eprintln!(
                "note: {source_name} runs at {rate} Hz, below 30 Hz: one window per sample \
                 (hop {:.4} s)",
                1.0 / rate
            );
            1.0 / rate
        }
        None => 1.0 / 30.0,
    };
    let channels = match &args.select {
        Some(spec) if !selected => Some(parse_channels(spec, &source.labels()).map_err(user)?),
        _ => None,
    };
    let spec = WindowSpec {
        length_s: args.window,
        hop_s: hop,
        channels,
    };

    let sd = StableDiffusion::load(&args.model, dtype, &device)?;
    let unit = size_unit(&sd);
    let size = args.size.unwrap_or_else(|| sd.default_size());
    if size == 0 || size % unit != 0 {
        return Err(usage(format!(
            "--size: expected a positive multiple of {unit} for this model, found {size}"
        )));
    }
    let generator = DiffusionFrames::new(
        sd,
        &DiffusionFramesOptions {
            prompt: args.prompt.clone(),
            scheduler: scheduler_kind,
            steps: args.steps,
            guidance: args.guidance,
            seed: args.seed,
            size,
            own_pools,
        },
    )?;
    let shape = generator.latent_shape();

    let mapper = LatentMapper::new(shape, args.seed).map_err(user)?;
    let keep_every_window = args.fast;
    let source: Box<dyn Source + Send> = if live || args.fast {
        source
    } else {
        Box::new(Pacer::new(source, Pace::RealTime))
    };
    let stream = LatentStream::new(source, &spec, mapper, smoother).map_err(user)?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // A second Ctrl-C ends at once. Installing fails only when a handler is already set
        // (a second run in one process), which then still sets a flag of its own.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("stopping: finishing the current frame (Ctrl-C again to quit at once)");
        });
    }
    let hub = Hub::new();
    let server = if args.no_serve {
        None
    } else {
        let server = start_server(args.serve.as_deref(), &hub)?;
        eprintln!("serving the live page at {}", server.url());
        Some(server)
    };
    // A replay that writes files is a job that ends with the file; the page stays open after
    // it only when asked for with --serve. Live sources keep their last frame on the page.
    let writes_files = args.out.is_some() || args.gif.is_some();
    let hold_last_frame = live || args.serve.is_some() || !writes_files;
    eprintln!(
        "streaming {source_name}: {} s windows every {:.4} s → {}×{} latents, {} {} step(s), \
         {size}×{size} px{}",
        args.window,
        hop,
        shape[1],
        shape[2],
        args.steps,
        scheduler_kind.name(),
        if args.fast {
            ", every window (--fast)"
        } else {
            ", newest window"
        }
    );
    let options = LiveOptions {
        keep_every_window,
        max_frames: args.frames,
        batch: args.batch,
        denoisers,
        png_dir: args.out.clone(),
        gif: args.gif.clone(),
        gif_delay_cs: (hop * 100.0).round().clamp(2.0, 65535.0) as u16,
        hub: server.as_ref().map(|_| hub.clone()),
        serve_url: server.as_ref().map(|s| s.url()),
        hold_last_frame,
        stop: stop.clone(),
        source_name: source_name.clone(),
        log: Arc::new(|message: &str| eprintln!("{message}")),
    };
    let out_existed = args.out.as_ref().is_some_and(|dir| dir.exists());
    let result = run_live(stream, &generator, &options);
    let served = server.is_some();
    if let Some(server) = server {
        server.shutdown();
    }
    if let (Err(_), Some(dir), false) = (&result, &args.out, out_existed) {
        // A failed run leaves no folder of frames behind that was not there before.
        let _ = std::fs::remove_dir_all(dir);
    }
    let summary = result.map_err(|e| match e {
        LiveError::Stream(e) => usage(format!("{source_name}: {e}")),
        LiveError::Output { path, error } => DataError::io(path, error).into(),
        other => anyhow::Error::from(other),
    })?;
    if served && !hold_last_frame && summary.ended == EndReason::SourceEnded {
        eprintln!(
            "the page closed with the end of {source_name}; pass --serve {DEFAULT_SERVE} to keep \
             it open on the last frame until Ctrl-C"
        );
    }
    let run = StreamRun {
        source: source_name,
        model: args.model.clone(),
        steps: args.steps,
        scheduler: scheduler_kind,
        hop_s: hop,
        window_s: args.window,
        latent_shape: shape,
        image_size: size,
        fast: args.fast,
        batch: args.batch,
        denoisers,
        png_dir: args.out.clone(),
    };
    if args.json {
        return super::print_json(&run.json(&summary)?);
    }
    out!("{}", run.text(&summary))
}
