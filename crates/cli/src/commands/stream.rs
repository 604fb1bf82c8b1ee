//! `brainrecon stream`: any multichannel time series to images in real time (Yamashiro,
//! Matsumoto & Ikegaya 2024). The signal side (sources, windows, window → latent, the frame
//! loop, outputs and the web page) is `brainrecon-stream`; this file adds the diffusion model.

use super::usage;
use brainrecon_data::image::RgbImage;
use brainrecon_data::DataError;
use brainrecon_diffusion::pipeline::{image_to_hwc, Conditioning, DType, StableDiffusion, Tensor};
use brainrecon_diffusion::rng::SeededNoise;
use brainrecon_diffusion::scheduler::{Scheduler, SchedulerKind};
use brainrecon_stream::window::parse_channels;
use brainrecon_stream::{
    open, run_live, serve, EdfReader, EndReason, Format, FrameGenerator, GenError, Hub, Latent,
    LatentMapper, LatentStream, LiveError, LiveOptions, OpenOptions, Pace, Pacer, RawFormat,
    RawReader, Server, SignalSelection, Smoother, Source, StreamError, Summary, Synthetic,
    SyntheticSpec, WindowSpec,
};
use std::path::{Path, PathBuf};
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

/// The diffusion model as a two-stage frame generator: the prompt is encoded once, the sampler
/// built once, and every frame's sampler noise comes from the same seed, so a latent always
/// gives the same image.
struct Diffusion {
    sd: StableDiffusion,
    context: Conditioning,
    scheduler: Scheduler,
    guidance: f64,
    seed: u64,
    shape: [usize; 3],
    /// Run each stage's work on a one-thread pool of the calling thread (several denoisers on
    /// the CPU), not on the pool that all stages share.
    own_pools: bool,
}

thread_local! {
    static OWN_POOL: std::cell::OnceCell<Option<rayon::ThreadPool>> =
        const { std::cell::OnceCell::new() };
}

/// Runs `work` on this thread's own one-thread pool, so that the convolutions and products of
/// one stage do not queue behind another stage's on the shared pool. Without a pool (it could
/// not be built) the work runs on the shared one.
fn on_own_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    OWN_POOL.with(|pool| {
        match pool.get_or_init(|| rayon::ThreadPoolBuilder::new().num_threads(1).build().ok()) {
            Some(pool) => pool.install(work),
            None => work(),
        }
    })
}

impl FrameGenerator for Diffusion {
    type Denoised = Tensor;

    fn latent_shape(&self) -> [usize; 3] {
        self.shape
    }

    /// One sampler run on the batch `[B, c, h, w]` of latents.
    fn denoise(&self, latents: &[Latent]) -> Result<Tensor, GenError> {
        self.on_pool(|| self.denoise_here(latents))
    }

    fn decode(&self, latents: Tensor) -> Result<Vec<RgbImage>, GenError> {
        self.on_pool(|| self.decode_here(latents))
    }
}

impl Diffusion {
    /// `work` on this thread's own pool when the stages have one each, else here.
    fn on_pool<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        if self.own_pools {
            on_own_pool(work)
        } else {
            work()
        }
    }

    fn denoise_here(&self, latents: &[Latent]) -> Result<Tensor, GenError> {
        let [c, h, w] = self.shape;
        let values: Vec<f32> = latents
            .iter()
            .flat_map(|l| l.values.iter().copied())
            .collect();
        let x_t = Tensor::from_vec(values, (latents.len(), c, h, w), &self.sd.device)?;
        let x = (x_t * self.scheduler.init_noise_sigma())?;
        let context = if latents.len() == 1 {
            self.context.clone()
        } else {
            let repeat = |t: &Tensor| t.repeat((latents.len(), 1, 1));
            Conditioning {
                cond: repeat(&self.context.cond)?,
                uncond: self.context.uncond.as_ref().map(repeat).transpose()?,
            }
        };
        let mut noise = SeededNoise::new(self.seed);
        Ok(self.sd.denoise(
            &x,
            &context,
            &self.scheduler,
            0,
            self.guidance,
            &mut noise,
            &mut |_| {},
        )?)
    }

    fn decode_here(&self, latents: Tensor) -> Result<Vec<RgbImage>, GenError> {
        let images = self.sd.decode_latent(&latents)?;
        let mut out = Vec::new();
        for i in 0..images.dim(0)? {
            let (h, w, values) = image_to_hwc(&images.narrow(0, i, 1)?)?;
            out.push(RgbImage::from_unit_f32(h, w, &values));
        }
        Ok(out)
    }
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

fn raw_format(name: Option<&str>, what: &str) -> anyhow::Result<RawFormat> {
    match name {
        Some(name) => RawFormat::parse(name).map_err(user),
        None => Err(usage(format!(
            "--format: {what} needs the sample format (i16 or f32)"
        ))),
    }
}

fn need<T>(value: Option<T>, flag: &str, what: &str) -> anyhow::Result<T> {
    value.ok_or_else(|| usage(format!("{flag}: {what} needs {flag}")))
}

/// An opened source: its name for messages, whether it is live (stdin and TCP: never paced),
/// and whether `--select` was applied in opening it (EDF/BDF).
struct Opened {
    source: Box<dyn Source + Send>,
    name: String,
    live: bool,
    selected: bool,
}

impl Opened {
    fn new(source: Box<dyn Source + Send>, name: impl Into<String>, live: bool) -> Self {
        Opened {
            source,
            name: name.into(),
            live,
            selected: false,
        }
    }
}

/// An EDF/BDF file: the signals `--select` names (else all), at the highest rate among them;
/// says which signals are resampled.
fn open_edf(path: &Path, select: Option<&str>) -> anyhow::Result<Opened> {
    let all = EdfReader::open(path, &SignalSelection::All).map_err(user)?;
    let reader = match select {
        None => all,
        Some(spec) => {
            let indices = parse_channels(spec, &all.labels()).map_err(user)?;
            if let Some(k) = (1..indices.len()).find(|&k| indices[..k].contains(&indices[k])) {
                return Err(usage(format!(
                    "--select: channel {} ({}) chosen twice",
                    indices[k],
                    all.labels()[indices[k]]
                )));
            }
            EdfReader::open(path, &SignalSelection::Indices(indices)).map_err(user)?
        }
    };
    let resampled = reader.resampled();
    if !resampled.is_empty() {
        let header = reader.header();
        let names: Vec<String> = resampled
            .iter()
            .map(|&i| format!("{} ({} Hz)", header.signals[i].label, header.rate(i)))
            .collect();
        eprintln!(
            "note: {}: {} resampled to {} Hz, the highest rate of the signals read (--select \
             signals of one rate to read them unchanged)",
            path.display(),
            names.join(", "),
            reader.rate()
        );
    }
    Ok(Opened {
        source: Box::new(reader),
        name: path.display().to_string(),
        live: false,
        selected: select.is_some(),
    })
}

/// The source `--source` names.
fn open_source(args: &Args) -> anyhow::Result<Opened> {
    let source = args.source.as_str();
    if source == "synthetic" {
        let spec = SyntheticSpec {
            channels: args.channels.unwrap_or(8),
            rate: args.rate.unwrap_or(250.0),
            seed: args.seed,
            ..SyntheticSpec::default()
        };
        let name = format!("synthetic ({} channels, {} Hz)", spec.channels, spec.rate);
        let source = Synthetic::new(spec).map_err(user)?;
        return Ok(Opened::new(Box::new(source), name, false));
    }
    if source == "stdin" || source == "-" {
        let what = "reading raw frames from stdin";
        let format = raw_format(args.format.as_deref(), what)?;
        let channels = need(args.channels, "--channels", what)?;
        let rate = need(args.rate, "--rate", what)?;
        let reader =
            RawReader::new(std::io::stdin(), "<stdin>", format, channels, rate).map_err(user)?;
        return Ok(Opened::new(Box::new(reader), "<stdin>", true));
    }
    if let Some(address) = source.strip_prefix("tcp://") {
        let what = "reading raw frames from a TCP stream";
        let format = raw_format(args.format.as_deref(), what)?;
        let channels = need(args.channels, "--channels", what)?;
        let rate = need(args.rate, "--rate", what)?;
        let stream = std::net::TcpStream::connect(address)
            .map_err(|e| usage(format!("--source {source}: cannot connect: {e}")))?;
        let reader = RawReader::new(stream, source, format, channels, rate).map_err(user)?;
        return Ok(Opened::new(Box::new(reader), source, true));
    }
    let path = Path::new(source);
    if !path.exists() {
        return Err(DataError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file (--source takes a recording, synthetic, stdin or tcp://HOST:PORT)",
            ),
        )
        .into());
    }
    let format = match args.format.as_deref() {
        None => None,
        Some("npy") => Some(Format::Npy),
        Some("csv") => Some(Format::Csv),
        Some("edf") | Some("bdf") => Some(Format::Edf),
        Some("nwb") => Some(Format::Nwb),
        Some(raw) => Some(Format::Raw(RawFormat::parse(raw).map_err(|_| {
            usage(format!(
                "--format: expected i16, f32, npy, csv, edf or nwb, found '{raw}'"
            ))
        })?)),
    };
    if format.or_else(|| Format::from_path(path)) == Some(Format::Edf) {
        return open_edf(path, args.select.as_deref());
    }
    let options = OpenOptions {
        format,
        rate: args.rate,
        channels: args.channels,
        ..OpenOptions::default()
    };
    let opened = open(path, &options).map_err(user)?;
    Ok(Opened::new(opened, path.display().to_string(), false))
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

    let Opened {
        source,
        name: source_name,
        live,
        selected,
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
    let f = sd.vae_scale_factor();
    let unit = f * sd.unet.config.downsampling_factor();
    let size = args.size.unwrap_or_else(|| sd.default_size());
    if size == 0 || size % unit != 0 {
        return Err(usage(format!(
            "--size: expected a positive multiple of {unit} for this model, found {size}"
        )));
    }
    let shape = [sd.unet.config.in_channels, size / f, size / f];
    let context = sd.encode_prompts(&[args.prompt.as_str()], None, args.guidance)?;
    let scheduler = sd.scheduler(scheduler_kind, args.steps)?;
    let generator = Diffusion {
        sd,
        context,
        scheduler,
        guidance: args.guidance,
        seed: args.seed,
        shape,
        own_pools,
    };

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
    report(
        &args,
        &summary,
        &source_name,
        hop,
        shape,
        size,
        scheduler_kind,
        denoisers,
    )
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    summary: &Summary,
    source: &str,
    hop: f64,
    shape: [usize; 3],
    size: usize,
    scheduler: SchedulerKind,
    denoisers: usize,
) -> anyhow::Result<()> {
    if args.json {
        let mut value = serde_json::to_value(summary)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("source".into(), source.into());
            map.insert("model".into(), args.model.clone().into());
            map.insert("steps".into(), args.steps.into());
            map.insert("scheduler".into(), scheduler.name().into());
            map.insert("hop_s".into(), hop.into());
            map.insert("window_s".into(), args.window.into());
            map.insert("latent_shape".into(), shape.to_vec().into());
            map.insert("image_size".into(), size.into());
            map.insert("fast".into(), args.fast.into());
            map.insert("batch".into(), args.batch.into());
            map.insert("denoisers".into(), denoisers.into());
            if let Some(dir) = &args.out {
                map.insert("png_dir".into(), dir.display().to_string().into());
            }
        }
        return super::print_json(&value);
    }
    outln!(
        "{} frames from {} windows ({} dropped) in {:.2} s: {:.2} fps sustained ({:.2} overall), \
         latency mean {:.0} ms, p95 {:.0} ms",
        summary.frames,
        summary.windows,
        summary.dropped,
        summary.wall_s,
        summary.fps,
        summary.fps_overall,
        summary.latency_ms_mean,
        summary.latency_ms_p95
    )?;
    if let Some(dir) = &args.out {
        outln!("wrote {} PNGs to {}", summary.png_frames, dir.display())?;
    }
    if let Some(gif) = &summary.gif {
        outln!("wrote {}", gif.display())?;
    }
    Ok(())
}
