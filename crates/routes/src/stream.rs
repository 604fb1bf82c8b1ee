//! The diffusion model as the live stream's frame generator (Yamashiro, Matsumoto & Ikegaya
//! 2024): each window's latent is the sampler's initial noise x_T, denoised in a few steps and
//! decoded. The signal side (sources, windows, the frame loop, outputs, the page) is
//! `brainrecon-stream`, which knows no model.

use crate::Result;
use brainrecon_data::image::RgbImage;
use brainrecon_diffusion::pipeline::{image_to_hwc, Conditioning, StableDiffusion, Tensor};
use brainrecon_diffusion::scheduler::{Scheduler, SchedulerKind};
use brainrecon_nn::rng::SeededNoise;
use brainrecon_stream::{FrameGenerator, GenError, Latent};

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
    pub model: String,
    pub steps: usize,
    pub scheduler: SchedulerKind,
    pub hop_s: f64,
    pub window_s: f64,
    /// [channels, height, width] of the latents.
    pub latent_shape: [usize; 3],
    pub image_size: usize,
    /// Every window made into a frame (a replay as fast as frames can be made).
    pub fast: bool,
    pub batch: usize,
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
