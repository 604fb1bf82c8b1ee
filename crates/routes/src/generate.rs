//! One image from a prompt (txt2img), or from a prompt and a starting image (img2img), written
//! as a PNG: the work of `brainrecon generate`.

use crate::error::{Result, RouteError};
use brainrecon_data::image::{write_png, RgbImage};
use brainrecon_diffusion::pipeline::{
    image_from_rgb8, image_to_hwc, Posterior, Progress, SampleOptions, StableDiffusion,
};
use brainrecon_diffusion::scheduler::SchedulerKind;
use brainrecon_nn::rng::SeededNoise;
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
