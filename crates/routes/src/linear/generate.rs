//! One image from a prompt (txt2img), or from a prompt and a starting image (img2img), written
//! as a PNG: the work of `brainrecon generate`.

use crate::error::{Result, RouteError};
use brainrecon_diffusion::pipeline::{
    image_from_rgb8, image_to_hwc, DType, Posterior, Progress, SampleOptions, StableDiffusion,
};
use brainrecon_diffusion::scheduler::SchedulerKind;
use brainrecon_formats::image::{write_png, RgbImage};
use brainrecon_nn::rng::SeededNoise;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

fn usage(message: impl Into<String>) -> RouteError {
    RouteError::Usage(message.into())
}

/// What to generate.
pub struct GenerateImage {
    /// The prompt.
    pub prompt: String,
    /// What to steer away from (used when guidance > 1).
    pub negative_prompt: Option<String>,
    /// img2img: the starting image and the share of the schedule run, in (0, 1].
    pub init: Option<(RgbImage, f64)>,
    /// Output size (default: the init image's rounded down to the model's unit, else the
    /// model's native size).
    pub height: Option<usize>,
    /// Output width.
    pub width: Option<usize>,
    /// Inference steps.
    pub steps: usize,
    /// Classifier-free guidance scale.
    pub guidance: f64,
    /// ddim, euler or euler-a (default: the model's).
    pub scheduler: Option<String>,
    /// Seed of all random draws.
    pub seed: u64,
    /// The PNG to write.
    pub out: PathBuf,
}

/// What [`generate_image`] wrote.
pub struct GeneratedImage {
    /// Height of the image.
    pub height: usize,
    /// Width of the image.
    pub width: usize,
    /// The scheduler's name.
    pub scheduler: &'static str,
    /// Seconds from the prompt to the pixels read back.
    pub seconds: f64,
}

/// Generates the image with `sd` and writes it; `progress` hears every denoising step.
pub fn generate_image(
    sd: &StableDiffusion,
    req: &GenerateImage,
    progress: &mut dyn FnMut(Progress),
) -> Result<GeneratedImage> {
    let scheduler = match &req.scheduler {
        Some(name) => SchedulerKind::parse(name).map_err(|e| usage(format!("--scheduler: {e}")))?,
        None => sd.default_scheduler(),
    };
    // Image size: a multiple of what the VAE and U-Net need.
    let unit = sd.vae_scale_factor() * sd.unet.config.downsampling_factor();
    let (default_h, default_w) = match &req.init {
        Some((img, _)) => (img.height / unit * unit, img.width / unit * unit),
        None => (sd.default_size(), sd.default_size()),
    };
    let height = req.height.unwrap_or(default_h);
    let width = req.width.unwrap_or(default_w);
    for (name, v) in [("--height", height), ("--width", width)] {
        if v == 0 || v % unit != 0 {
            return Err(usage(format!(
                "{name}: expected a positive multiple of {unit} for this model, found {v}"
            )));
        }
    }

    let started = Instant::now();
    let negative: Vec<&str> = req.negative_prompt.iter().map(String::as_str).collect();
    let context = sd.encode_prompts(
        &[req.prompt.as_str()],
        req.negative_prompt.as_ref().map(|_| negative.as_slice()),
        req.guidance,
    )?;
    let options = SampleOptions {
        steps: req.steps,
        guidance: req.guidance,
        scheduler,
    };
    let mut noise = SeededNoise::new(req.seed);
    let latents = match &req.init {
        Some((img, strength)) => {
            let img = img.resize(height, width);
            let pixels = image_from_rgb8(img.height, img.width, &img.pixels, &sd.device)?;
            let latent = sd.encode_image(&pixels, Posterior::Sample, &mut noise)?;
            sd.img2img(&latent, &context, *strength, &options, &mut noise, progress)?
        }
        None => sd.txt2img(&context, height, width, &options, &mut noise, progress)?,
    };
    let image = sd.decode_latent(&latents)?;
    let (h, w, values) = image_to_hwc(&image)?;
    // image_to_hwc read the pixels back, so every stage has finished
    let seconds = started.elapsed().as_secs_f64();
    write_png(&req.out, &RgbImage::from_unit_f32(h, w, &values))?;
    Ok(GeneratedImage {
        height: h,
        width: w,
        scheduler: scheduler.name(),
        seconds,
    })
}

/// `brainrecon generate` as the command line asks for it.
pub struct GenerateRequest {
    /// The model (folder, cached id or shapes-ldm).
    pub model: String,
    /// The prompt, negative prompt, size, steps, guidance, scheduler, seed and PNG; `init` is
    /// set from `init_image` and `strength`.
    pub image: GenerateImage,
    /// Start from this PNG (img2img).
    pub init_image: Option<PathBuf>,
    /// img2img's share of the schedule (default 0.8; needs `init_image`).
    pub strength: Option<f64>,
    /// Where the model runs.
    pub device: brainrecon_core::Device,
    /// The weights' precision: f32, f16, or bf16 (GPU only).
    pub dtype: DType,
}

/// What [`generate`] wrote, with the settings a report names (fields in the order the JSON
/// has always had them: by name).
#[derive(Debug, Serialize)]
pub struct Generated {
    /// The device the model ran on, as given.
    pub device: String,
    /// The weights' precision (`f32`, `f16`, `bf16`).
    pub dtype: String,
    /// Image height (px).
    pub height: usize,
    /// Seconds to load the model.
    pub load_seconds: f64,
    /// The PNG written.
    pub out: PathBuf,
    /// Seconds from the prompt to the pixels read back.
    pub prompt_to_pixels_seconds: f64,
    /// The sampler's name.
    pub scheduler: &'static str,
    /// Seed of the initial noise.
    pub seed: u64,
    /// Denoising steps of the schedule (img2img runs `strength` of them).
    pub steps: usize,
    /// Image width (px).
    pub width: usize,
}

impl Generated {
    /// The line the command prints.
    pub fn text(&self) -> String {
        format!(
            "wrote {} ({}×{}, {} steps, {}, seed {})",
            self.out.display(),
            self.height,
            self.width,
            self.steps,
            self.scheduler,
            self.seed
        )
    }
}

/// Checks `request` (every setting and the init image before the model loads), loads the
/// model and generates; `progress` hears every denoising step.
pub fn generate(request: GenerateRequest, progress: &mut dyn FnMut(Progress)) -> Result<Generated> {
    let r = request;
    let dtype = r.dtype;
    crate::decode::options::check_sampling(r.image.steps, r.image.guidance)?;
    let strength = match (&r.init_image, r.strength) {
        (None, Some(_)) => return Err(usage("--strength needs --init-image")),
        (Some(_), s) => {
            let s = s.unwrap_or(0.8);
            if !(s > 0.0 && s <= 1.0) {
                return Err(usage(format!("--strength: expected (0, 1], found {s}")));
            }
            Some(s)
        }
        (None, None) => None,
    };
    if let Some(s) = strength {
        if (r.image.steps as f64 * s) < 1.0 {
            return Err(usage(format!(
                "--strength {s} × --steps {} runs no denoising step",
                r.image.steps
            )));
        }
    }
    let init = match &r.init_image {
        Some(path) => Some(brainrecon_formats::image::read_png(path)?),
        None => None,
    };
    let out = r.image.out.clone();
    if out.extension().and_then(|e| e.to_str()) != Some("png") {
        return Err(usage(format!(
            "--out: expected a .png path, found {}",
            out.display()
        )));
    }
    let started = Instant::now();
    let device = crate::decode::options::open_device(r.device)?;
    crate::decode::options::check_dtype_on(dtype, &device)?;
    let sd = StableDiffusion::load(&r.model, dtype, &device)?;
    let load_seconds = started.elapsed().as_secs_f64();
    // The size defaults to the init image's, rounded down to the model's unit: an image
    // smaller than one unit has no size to default to, and the flags were not given.
    if let (Some(img), Some(path)) = (&init, &r.init_image) {
        let unit = sd.vae_scale_factor() * sd.unet.config.downsampling_factor();
        let short = (r.image.height.is_none() && img.height < unit)
            || (r.image.width.is_none() && img.width < unit);
        if short {
            return Err(RouteError::mismatch(
                path,
                "size",
                format!("at least {unit}×{unit} pixels (this model's unit; or give --height and --width)"),
                format!("{}×{} pixels", img.height, img.width),
            ));
        }
    }
    let image = GenerateImage {
        init: init.zip(strength),
        ..r.image
    };
    let made = generate_image(&sd, &image, progress)?;
    Ok(Generated {
        out,
        height: made.height,
        width: made.width,
        steps: image.steps,
        scheduler: made.scheduler,
        seed: image.seed,
        device: r.device.to_string(),
        dtype: dtype.as_str().to_string(),
        load_seconds,
        prompt_to_pixels_seconds: made.seconds,
    })
}

/// A progress callback for [`generate`] that rewrites one line of standard error per
/// denoising step, when `show` (a person is watching).
pub fn step_printer(show: bool) -> impl FnMut(Progress) {
    move |p: Progress| {
        if show {
            eprint!(
                "\rdenoising: step {}/{} (t = {})",
                p.step, p.total, p.timestep
            );
            if p.step == p.total {
                eprintln!();
            }
            let _ = std::io::Write::flush(&mut std::io::stderr());
        }
    }
}
