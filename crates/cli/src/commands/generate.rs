use crate::commands::prelude::*;
use brainrecon_routes::linear::generate::{generate, step_printer, GenerateImage, GenerateRequest};

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
#[command(mut_arg("device", |a| a.help("cpu, cuda or cuda:N (a build with `--features cuda`)")))]
#[command(mut_arg("json", |a| a.help("Print what was written and the seconds each stage took as JSON")))]
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
    #[command(flatten)]
    dtype: DtypeArgs,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
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
    let made = generate(
        GenerateRequest {
            model: args.model,
            image: GenerateImage {
                prompt: args.prompt,
                negative_prompt: args.negative_prompt,
                init: None,
                height: args.height,
                width: args.width,
                steps: args.steps,
                guidance: args.guidance,
                scheduler: args.scheduler,
                seed: args.seed,
                out: args.out,
            },
            init_image: args.init_image,
            strength: args.strength,
            dtype: args.dtype.dtype()?,
            device: args.device.choice()?,
        },
        &mut step_printer(super::show_progress()),
    )?;
    args.json.print(&made, |_| made.text())
}
