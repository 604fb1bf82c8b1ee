use super::usage;
use brainrecon_data::image::{read_png, write_png, RgbImage};
use brainrecon_diffusion::pipeline::{
    image_from_rgb8, image_to_hwc, DType, Device, Posterior, Progress, SampleOptions,
    StableDiffusion,
};
use brainrecon_diffusion::rng::SeededNoise;
use brainrecon_diffusion::scheduler::SchedulerKind;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Generate an image with Stable Diffusion: txt2img, or img2img from `--init-image`.
///
/// `--model` is a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
/// scheduler/), a Hugging Face cache snapshot, or a model id found in the cache
/// ($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub); nothing is downloaded. Weights
/// must be safetensors. All noise comes from `--seed`: the same seed writes the same PNG.
/// Sampling follows diffusers (classifier-free guidance when `--guidance` > 1; img2img runs
/// floor(steps × strength) steps from the noised image latent). `--device cuda` runs every model
/// on the GPU; `--json` reports the load time and the prompt-to-pixels time.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon generate --model stabilityai/sd-turbo --prompt \"a red circle on a blue background\" --steps 1 --guidance 0 --scheduler euler-a --out circle.png\n  brainrecon generate --model models/sd15 --prompt \"a dog\" --init-image stim.png --strength 0.8 --seed 7 --out dog.png"
)]
pub struct Args {
    /// Diffusers folder, cache snapshot, cached model id (ORG/NAME), or shapes-ldm (the
    /// project's own small model, built in)
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// The prompt
    #[arg(long)]
    prompt: String,
    /// What to steer away from (used when --guidance > 1)
    #[arg(long)]
    negative_prompt: Option<String>,
    /// Start from this PNG (img2img) instead of pure noise
    #[arg(long)]
    init_image: Option<PathBuf>,
    /// img2img: how much of the schedule to run, in (0, 1] (needs --init-image)
    #[arg(long)]
    strength: Option<f64>,
    /// Inference steps
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Classifier-free guidance scale (≤ 1 disables guidance)
    #[arg(long, default_value_t = 7.5)]
    guidance: f64,
    /// Seed of all random draws
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// ddim, euler or euler-a (default: the model's scheduler if it is one of these, else ddim)
    #[arg(long)]
    scheduler: Option<String>,
    /// Weights' precision: f32, f16, or bf16 (GPU only)
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// cpu, cuda or cuda:N (a build with `--features cuda`)
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print what was written and the seconds each stage took as JSON
    #[arg(long)]
    json: bool,
    /// Output height in pixels (default: the init image's, else the model's native size)
    #[arg(long)]
    height: Option<usize>,
    /// Output width in pixels
    #[arg(long)]
    width: Option<usize>,
    /// The PNG to write
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dtype: DType = super::dtype(&args.dtype)?;
    super::check_sampling(args.steps, args.guidance)?;
    let strength = match (&args.init_image, args.strength) {
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
        if (args.steps as f64 * s) < 1.0 {
            return Err(usage(format!(
                "--strength {s} × --steps {} runs no denoising step",
                args.steps
            )));
        }
    }
    let init = match &args.init_image {
        Some(path) => Some(read_png(path)?),
        None => None,
    };
    if args.out.extension().and_then(|e| e.to_str()) != Some("png") {
        return Err(usage(format!(
            "--out: expected a .png path, found {}",
            args.out.display()
        )));
    }

    let started = Instant::now();
    let device: Device = super::device(&args.device)?;
    super::check_dtype_on(dtype, &device)?;
    let sd = StableDiffusion::load(&args.model, dtype, &device)?;
    let load_seconds = started.elapsed().as_secs_f64();
    let scheduler = match &args.scheduler {
        Some(name) => SchedulerKind::parse(name).map_err(|e| usage(format!("--scheduler: {e}")))?,
        None => sd.default_scheduler(),
    };

    // Image size: a multiple of what the VAE and U-Net need.
    let unit = sd.vae_scale_factor() * sd.unet.config.downsampling_factor();
    let (default_h, default_w) = match &init {
        Some(img) => (img.height / unit * unit, img.width / unit * unit),
        None => (sd.default_size(), sd.default_size()),
    };
    let height = args.height.unwrap_or(default_h);
    let width = args.width.unwrap_or(default_w);
    for (name, v) in [("--height", height), ("--width", width)] {
        if v == 0 || v % unit != 0 {
            return Err(usage(format!(
                "{name}: expected a positive multiple of {unit} for this model, found {v}"
            )));
        }
    }

    let started = Instant::now();
    let negative: Vec<&str> = args.negative_prompt.iter().map(String::as_str).collect();
    let context = sd.encode_prompts(
        &[args.prompt.as_str()],
        args.negative_prompt.as_ref().map(|_| negative.as_slice()),
        args.guidance,
    )?;
    let options = SampleOptions {
        steps: args.steps,
        guidance: args.guidance,
        scheduler,
    };
    let mut noise = SeededNoise::new(args.seed);
    let show = super::show_progress();
    let mut progress = |p: Progress| {
        if show {
            eprint!(
                "\rdenoising: step {}/{} (t = {})",
                p.step, p.total, p.timestep
            );
            if p.step == p.total {
                eprintln!();
            }
            let _ = std::io::stderr().flush();
        }
    };
    let latents = match (&init, strength) {
        (Some(img), Some(strength)) => {
            let img = img.resize(height, width);
            let pixels = image_from_rgb8(img.height, img.width, &img.pixels, &device)?;
            let latent = sd.encode_image(&pixels, Posterior::Sample, &mut noise)?;
            sd.img2img(
                &latent,
                &context,
                strength,
                &options,
                &mut noise,
                &mut progress,
            )?
        }
        _ => sd.txt2img(&context, height, width, &options, &mut noise, &mut progress)?,
    };
    let image = sd.decode_latent(&latents)?;
    let (h, w, values) = image_to_hwc(&image)?;
    // image_to_hwc read the pixels back, so every stage has finished
    let sample_seconds = started.elapsed().as_secs_f64();
    write_png(&args.out, &RgbImage::from_unit_f32(h, w, &values))?;
    if args.json {
        return super::print_json(&serde_json::json!({
            "out": args.out,
            "height": h,
            "width": w,
            "steps": args.steps,
            "scheduler": scheduler.name(),
            "seed": args.seed,
            "device": args.device,
            "dtype": args.dtype,
            "load_seconds": load_seconds,
            "prompt_to_pixels_seconds": sample_seconds,
        }));
    }
    outln!(
        "wrote {} ({h}×{w}, {} steps, {}, seed {})",
        args.out.display(),
        args.steps,
        scheduler.name(),
        args.seed
    )?;
    Ok(())
}
