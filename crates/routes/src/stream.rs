//! The diffusion model as the live stream's frame generator (Yamashiro, Matsumoto & Ikegaya
//! 2024): each window's latent is the sampler's initial noise x_T, denoised in a few steps and
//! decoded. The signal side (sources, windows, the frame loop, outputs, the page) is
//! `brainrecon-stream`, which knows no model.

use crate::{Result, RouteError};
use brainrecon_diffusion::pipeline::{
    image_to_hwc, Conditioning, DType, Device, StableDiffusion, Tensor,
};
use brainrecon_diffusion::scheduler::{Scheduler, SchedulerKind};
use brainrecon_formats::image::RgbImage;
use brainrecon_nn::rng::SeededNoise;
use brainrecon_stream::live::Log;
use brainrecon_stream::named::{open_named, NamedSource, NamedSourceError, NamedSourceOptions};
use brainrecon_stream::window::parse_channels;
use brainrecon_stream::{
    run_live, serve_page, EndReason, FrameGenerator, GenError, Hub, Latent, LatentMapper,
    LatentStream, LiveError, LiveOptions, Pace, Pacer, Smoother, Source, StreamError, Summary,
    WindowSpec, DEFAULT_SERVE,
};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// How the model makes a frame.
#[derive(Debug, Clone)]
pub struct DiffusionFramesOptions {
    /// The prompt, encoded once.
    pub prompt: String,
    /// The sampler.
    pub scheduler: SchedulerKind,
    /// Denoising steps per frame.
    pub steps: usize,
    /// Classifier-free guidance scale (≤ 1: none, one U-Net pass per step).
    pub guidance: f64,
    /// Seed of every frame's sampler noise.
    pub seed: u64,
    /// Image size in pixels: a positive multiple of [`size_unit`].
    pub size: usize,
    /// Run each stage's work on a one-thread pool of the calling thread (several denoisers on
    /// the CPU), not on the pool that all stages share.
    pub own_pools: bool,
}

/// The multiple that image sizes must be for `sd`: the VAE's scale factor times the U-Net's
/// downsampling.
pub fn size_unit(sd: &StableDiffusion) -> usize {
    sd.vae_scale_factor() * sd.unet.config.downsampling_factor()
}

/// The diffusion model as a two-stage frame generator: the prompt is encoded once, the sampler
/// built once, and every frame's sampler noise comes from the same seed, so a latent always
/// gives the same image.
pub struct DiffusionFrames {
    sd: StableDiffusion,
    context: Conditioning,
    scheduler: Scheduler,
    guidance: f64,
    seed: u64,
    shape: [usize; 3],
    own_pools: bool,
}

impl DiffusionFrames {
    /// Encodes the prompt and builds the sampler; latents are `[c, size/f, size/f]` with the
    /// U-Net's input channels c and the VAE's scale factor f.
    pub fn new(sd: StableDiffusion, options: &DiffusionFramesOptions) -> Result<Self> {
        let f = sd.vae_scale_factor();
        let shape = [
            sd.unet.config.in_channels,
            options.size / f,
            options.size / f,
        ];
        let context = sd.encode_prompts(&[options.prompt.as_str()], None, options.guidance)?;
        let scheduler = sd.scheduler(options.scheduler, options.steps)?;
        Ok(DiffusionFrames {
            sd,
            context,
            scheduler,
            guidance: options.guidance,
            seed: options.seed,
            shape,
            own_pools: options.own_pools,
        })
    }

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

impl FrameGenerator for DiffusionFrames {
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

/// What a stream run was, for its report beside the frame loop's [`brainrecon_stream::Summary`].
pub struct StreamRun {
    /// The source's name for messages.
    pub source: String,
    /// The diffusion model as named.
    pub model: String,
    /// Denoising steps per frame.
    pub steps: usize,
    /// The sampler.
    pub scheduler: SchedulerKind,
    /// Seconds between windows.
    pub hop_s: f64,
    /// Window length, seconds.
    pub window_s: f64,
    /// [channels, height, width] of the latents.
    pub latent_shape: [usize; 3],
    /// Frame size in pixels (square).
    pub image_size: usize,
    /// Every window made into a frame (a replay as fast as frames can be made).
    pub fast: bool,
    /// Windows per sampler run.
    pub batch: usize,
    /// Frames denoised at once.
    pub denoisers: usize,
    /// The folder the frames were written to, if any.
    pub png_dir: Option<std::path::PathBuf>,
}

impl StreamRun {
    /// The summary with the run's settings, as `stream --json` prints it.
    pub fn json(
        &self,
        summary: &brainrecon_stream::Summary,
    ) -> serde_json::Result<serde_json::Value> {
        let mut value = serde_json::to_value(summary)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("source".into(), self.source.clone().into());
            map.insert("model".into(), self.model.clone().into());
            map.insert("steps".into(), self.steps.into());
            map.insert("scheduler".into(), self.scheduler.name().into());
            map.insert("hop_s".into(), self.hop_s.into());
            map.insert("window_s".into(), self.window_s.into());
            map.insert("latent_shape".into(), self.latent_shape.to_vec().into());
            map.insert("image_size".into(), self.image_size.into());
            map.insert("fast".into(), self.fast.into());
            map.insert("batch".into(), self.batch.into());
            map.insert("denoisers".into(), self.denoisers.into());
            if let Some(dir) = &self.png_dir {
                map.insert("png_dir".into(), dir.display().to_string().into());
            }
        }
        Ok(value)
    }

    /// The summary as `stream` prints it.
    pub fn text(&self, summary: &brainrecon_stream::Summary) -> String {
        use std::fmt::Write;
        let mut text = String::new();
        let _ = writeln!(
            text,
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
        );
        if let Some(dir) = &self.png_dir {
            let _ = writeln!(
                text,
                "wrote {} PNGs to {}",
                summary.png_frames,
                dir.display()
            );
        }
        if let Some(gif) = &summary.gif {
            let _ = writeln!(text, "wrote {}", gif.display());
        }
        text
    }
}

/// Everything a stream run needs; [`run_stream`] checks the rest of it (sizes, denoisers).
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct StreamOptions {
    /// PATH, `synthetic`, `stdin` or `tcp://HOST:PORT`.
    #[cfg_attr(
        feature = "cli",
        arg(long, help = "PATH, synthetic, stdin or tcp://HOST:PORT")
    )]
    pub source: String,
    /// Channel count (raw, stdin and TCP sources; synthetic: default 8).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Channel count (raw, stdin and TCP sources; synthetic: default 8)"
        )
    )]
    pub channels: Option<usize>,
    /// Sample rate in Hz (raw, `.npy`, CSV, stdin and TCP sources; synthetic: default 250).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Sample rate in Hz (raw, .npy, CSV, stdin and TCP sources; synthetic: default 250)"
        )
    )]
    pub rate: Option<f64>,
    /// Sample format: `i16` or `f32` (files also `npy`, `csv`, `edf`, `nwb`; default: from the
    /// extension).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Sample format of raw, stdin and TCP sources: i16 or f32 (for files also npy, csv, edf, nwb; default: from the extension)"
        )
    )]
    pub format: Option<String>,
    /// Replay as fast as frames can be made, one frame per window.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Replay as fast as frames can be made, one frame per window (reproducible)"
        )
    )]
    pub fast: bool,
    /// Diffusers folder, cache snapshot, model id or `shapes-ldm`.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value = "shapes-ldm",
            help = "Diffusers folder, cache snapshot, cached model id, or shapes-ldm (built in)"
        )
    )]
    pub model: String,
    /// Serve the page on this address (also keeps the page open after a file ends).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "ADDRESS",
            conflicts_with = "no_serve",
            help = "Serve the live page on this address [default: 127.0.0.1:8080, or a free port when that one is taken]; given, it also keeps the page open on the last frame after a file ends"
        )
    )]
    pub serve: Option<String>,
    /// Serve no page.
    #[cfg_attr(feature = "cli", arg(long, help = "Do not serve the page"))]
    pub no_serve: bool,
    /// Write every frame as DIR/frame-NNNNNN.png.
    #[cfg_attr(
        feature = "cli",
        arg(long, help = "Write every frame as DIR/frame-NNNNNN.png")
    )]
    pub out: Option<PathBuf>,
    /// Write an animated GIF.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Write an animated GIF of the frames (completed at the end)"
        )
    )]
    pub gif: Option<PathBuf>,
    /// Denoising steps per frame.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 5, help = "Denoising steps per frame")
    )]
    pub steps: usize,
    /// The sampler.
    #[cfg_attr(feature = "cli", arg(long, default_value = "ddim", value_parser = scheduler_flag, help = "ddim (eta 0), euler or euler-a"))]
    pub scheduler: SchedulerKind,
    /// Classifier-free guidance scale (≤ 1: none).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 0.0,
            help = "Classifier-free guidance scale (≤ 1: none, one U-Net pass per step)"
        )
    )]
    pub guidance: f64,
    /// Seed of the latent permutation, the sampler's noise and the synthetic source.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 0,
            help = "Seed of the latent permutation, the sampler's noise and the synthetic source"
        )
    )]
    pub seed: u64,
    /// The prompt every frame is conditioned on.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value = "", help = "The prompt (encoded once)")
    )]
    pub prompt: String,
    /// Image size in pixels (default: the model's).
    #[cfg_attr(
        feature = "cli",
        arg(long, help = "Image size in pixels (default: the model's)")
    )]
    pub size: Option<usize>,
    /// Window length in seconds.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 1.0, help = "Window length in seconds")
    )]
    pub window: f64,
    /// Seconds between windows (default 1/30 s, or one sample below 30 Hz).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Seconds between windows (default 1/30 s, or one sample for sources below 30 Hz)"
        )
    )]
    pub hop: Option<f64>,
    /// Channels to use (indices, ranges, labels).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Channels to use: indices, ranges and labels, e.g. 0-3,Fp1 (EDF/BDF: the signals to read, resampled to the highest rate among them)"
        )
    )]
    pub select: Option<String>,
    /// Exponential smoothing of consecutive latents, if any.
    #[cfg_attr(feature = "cli", arg(long = "smooth", value_name = "SMOOTH", value_parser = smoothing_flag, help = "Blend successive latents: 1 is none, smaller is smoother"))]
    pub smoother: Option<Smoother>,
    /// Stop after this many frames.
    #[cfg_attr(feature = "cli", arg(long, help = "Stop after this many frames"))]
    pub frames: Option<u64>,
    /// Windows per sampler run.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 1,
            help = "Windows generated together in one sampler run (more frames per second, more latency; live, the newest N windows)"
        )
    )]
    pub batch: usize,
    /// Frames denoised at once (default: 2 on the CPU, 1 on a GPU).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Frames denoised at once, each on its own thread (default: 2 on the CPU, where one small sampler run cannot keep two cores busy; 1 on a GPU)"
        )
    )]
    pub denoisers: Option<usize>,
    /// Where the model runs.
    #[cfg_attr(feature = "cli", arg(skip = Device::Cpu))]
    pub device: Device,
    /// The weights' precision.
    #[cfg_attr(feature = "cli", arg(skip = DType::F32))]
    pub dtype: DType,
    /// Set (by a signal) to end the run after the current frame.
    #[cfg_attr(feature = "cli", arg(skip = Arc::new(AtomicBool::new(false))))]
    pub stop: Arc<AtomicBool>,
    /// Installs the handler that sets `stop`; called once the model is loaded and the stream
    /// built, so that a signal before then ends the process as usual.
    #[cfg_attr(feature = "cli", arg(skip = None))]
    pub on_signals: Option<fn(&Arc<AtomicBool>)>,
    /// Messages for the user (notes, the page's address).
    #[cfg_attr(feature = "cli", arg(skip = silent_log()))]
    pub log: Log,
}

/// The log of options made from flags, until the caller sets its own: it drops every message.
#[cfg(feature = "cli")]
fn silent_log() -> Log {
    Arc::new(|_: &str| {})
}

/// `--scheduler`: `ddim` (eta 0), `euler` or `euler-a`; any other name is a usage error.
#[cfg(feature = "cli")]
fn scheduler_flag(name: &str) -> Result<SchedulerKind> {
    SchedulerKind::parse(name).map_err(|e| RouteError::Usage(format!("--scheduler: {e}")))
}

/// `--smooth`: the latents' smoothing α in (0, 1]; a value out of range is a usage error (one
/// that is no number, clap's own).
#[cfg(feature = "cli")]
fn smoothing_flag(
    text: &str,
) -> std::result::Result<Smoother, Box<dyn std::error::Error + Send + Sync>> {
    let alpha: f32 = text.parse()?;
    Smoother::new(alpha).map_err(|e| RouteError::Usage(e.to_string()).into())
}

/// What [`run_stream`] did: the run's settings and the frame loop's summary.
pub struct StreamReport {
    /// The run's settings.
    pub run: StreamRun,
    /// The frame loop's counts and timings.
    pub summary: Summary,
}

impl StreamReport {
    /// As `stream --json` prints it.
    pub fn json(&self) -> serde_json::Result<serde_json::Value> {
        self.run.json(&self.summary)
    }

    /// As `stream` prints it.
    pub fn text(&self) -> String {
        self.run.text(&self.summary)
    }
}

/// Why [`run_stream`] failed: bad input (a [`RouteError`]) or the frame loop itself.
#[derive(Debug, thiserror::Error)]
pub enum StreamRunError {
    /// Bad input: the source, sizes, the model, the settings.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The generator failed (not the user's input).
    #[error(transparent)]
    Live(LiveError),
}

fn user(error: StreamError) -> RouteError {
    RouteError::Usage(error.to_string())
}

/// Streams `options.source` into images: opens the source, loads the model, serves the page,
/// runs the frame loop until the source ends, `frames` are made or `stop` is set, and returns
/// the report. A failed run removes the PNG folder it created.
// `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
#[allow(clippy::manual_is_multiple_of)]
pub fn run_stream(options: StreamOptions) -> Result<StreamReport, StreamRunError> {
    let o = options;
    let log = o.log.clone();
    let denoisers = o.denoisers.unwrap_or(if o.device.is_cpu() { 2 } else { 1 });
    if denoisers == 0 || denoisers > 16 {
        return Err(
            RouteError::Usage(format!("--denoisers: expected 1 to 16, found {denoisers}")).into(),
        );
    }
    let own_pools = o.device.is_cpu() && denoisers > 1;
    if own_pools && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // candle's elementwise ops on large tensors go to one process-wide pool of spinning
        // threads; with a thread per stage they would queue there and spin on the cores the
        // stages need. Set before the first such op.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }

    let named = NamedSourceOptions {
        channels: o.channels,
        rate: o.rate,
        format: o.format.clone(),
        select: o.select.clone(),
        seed: o.seed,
    };
    let NamedSource {
        source,
        name: source_name,
        live,
        selected,
        notes,
    } = open_named(&o.source, &named).map_err(|e| match e {
        NamedSourceError::Data(e) => RouteError::Data(e),
        other => RouteError::Usage(other.to_string()),
    })?;
    for note in &notes {
        log(note);
    }
    let rate = source.rate();
    let hop = match o.hop {
        Some(hop) => hop,
        None if rate < 30.0 => {
            log(&format!(
                "note: {source_name} runs at {rate} Hz, below 30 Hz: one window per sample \
                 (hop {:.4} s)",
                1.0 / rate
            ));
            1.0 / rate
        }
        None => 1.0 / 30.0,
    };
    let channels = match &o.select {
        Some(spec) if !selected => Some(parse_channels(spec, &source.labels()).map_err(user)?),
        _ => None,
    };
    let spec = WindowSpec {
        length_s: o.window,
        hop_s: hop,
        channels,
    };

    let sd = StableDiffusion::load(&o.model, o.dtype, &o.device).map_err(RouteError::from)?;
    let unit = size_unit(&sd);
    let size = o.size.unwrap_or_else(|| sd.default_size());
    if size == 0 || size % unit != 0 {
        return Err(RouteError::Usage(format!(
            "--size: expected a positive multiple of {unit} for this model, found {size}"
        ))
        .into());
    }
    let generator = DiffusionFrames::new(
        sd,
        &DiffusionFramesOptions {
            prompt: o.prompt.clone(),
            scheduler: o.scheduler,
            steps: o.steps,
            guidance: o.guidance,
            seed: o.seed,
            size,
            own_pools,
        },
    )?;
    let shape = generator.latent_shape();

    let mapper = LatentMapper::new(shape, o.seed).map_err(user)?;
    let source: Box<dyn Source + Send> = if live || o.fast {
        source
    } else {
        Box::new(Pacer::new(source, Pace::RealTime))
    };
    let stream = LatentStream::new(source, &spec, mapper, o.smoother).map_err(user)?;
    if let Some(install) = o.on_signals {
        install(&o.stop);
    }
    let hub = Hub::new();
    let server = if o.no_serve {
        None
    } else {
        let server =
            serve_page(o.serve.as_deref(), &hub, &|note| log(note)).map_err(RouteError::from)?;
        log(&format!("serving the live page at {}", server.url()));
        Some(server)
    };
    // A replay that writes files is a job that ends with the file; the page stays open after
    // it only when asked for with --serve. Live sources keep their last frame on the page.
    let writes_files = o.out.is_some() || o.gif.is_some();
    let hold_last_frame = live || o.serve.is_some() || !writes_files;
    log(&format!(
        "streaming {source_name}: {} s windows every {:.4} s → {}×{} latents, {} {} step(s), \
         {size}×{size} px{}",
        o.window,
        hop,
        shape[1],
        shape[2],
        o.steps,
        o.scheduler.name(),
        if o.fast {
            ", every window (--fast)"
        } else {
            ", newest window"
        }
    ));
    let live_options = LiveOptions {
        keep_every_window: o.fast,
        max_frames: o.frames,
        batch: o.batch,
        denoisers,
        png_dir: o.out.clone(),
        gif: o.gif.clone(),
        gif_delay_cs: (hop * 100.0).round().clamp(2.0, 65535.0) as u16,
        hub: server.as_ref().map(|_| hub.clone()),
        serve_url: server.as_ref().map(|s| s.url()),
        hold_last_frame,
        stop: o.stop.clone(),
        source_name: source_name.clone(),
        log: log.clone(),
    };
    let out_existed = o.out.as_ref().is_some_and(|dir| dir.exists());
    let result = run_live(stream, &generator, &live_options);
    let served = server.is_some();
    if let Some(server) = server {
        server.shutdown();
    }
    if let (Err(_), Some(dir), false) = (&result, &o.out, out_existed) {
        // A failed run leaves no folder of frames behind that was not there before.
        let _ = std::fs::remove_dir_all(dir);
    }
    let summary = result.map_err(|e| match e {
        LiveError::Stream(e) => RouteError::Usage(format!("{source_name}: {e}")).into(),
        LiveError::Output { path, error } => {
            RouteError::Data(brainrecon_core::DataError::io(path, error)).into()
        }
        other => StreamRunError::Live(other),
    })?;
    if served && !hold_last_frame && summary.ended == EndReason::SourceEnded {
        log(&format!(
            "the page closed with the end of {source_name}; pass --serve {DEFAULT_SERVE} to keep \
             it open on the last frame until Ctrl-C"
        ));
    }
    let run = StreamRun {
        source: source_name,
        model: o.model,
        steps: o.steps,
        scheduler: o.scheduler,
        hop_s: hop,
        window_s: o.window,
        latent_shape: shape,
        image_size: size,
        fast: o.fast,
        batch: o.batch,
        denoisers,
        png_dir: o.out,
    };
    Ok(StreamReport { run, summary })
}
