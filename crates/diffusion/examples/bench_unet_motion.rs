//! CPU benchmark: one AnimateDiff motion U-Net step (`UNetMotionModel`): the Stable Diffusion
//! 1.5 U-Net with the v1.5 motion adapter's modules (diffusers' `MotionAdapter()` defaults:
//! two modules per down block, three per up block, one in the mid block, 8 heads, 32 frames),
//! on one clip of 16 frames at 256 px (latents [1, 4, 16, 32, 32], context [1, 77, 768]
//! repeated per frame), f32. Weights are random, drawn per tensor from a seeded ChaCha
//! generator (no download); the positional tables are the sinusoidal formula.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p brainrecon-diffusion --example bench_unet_motion -- \
//!     [--frames 16] [--latent 32] [--steps 1] [--seed 0] [--json]
//! ```
//! `--image-only` times the image U-Net alone on the same 16 frames (as 16 images), to show
//! the motion modules' share. `tools/bench/unet_motion.sh` runs it next to diffusers'
//! `UNetMotionModel` in the same run.

use std::time::Instant;

use brainrecon_diffusion::motion::{MotionAdapter, MotionAdapterConfig};
use brainrecon_diffusion::unet::{UNet2DConditionConfig, UNet2DConditionModel};
use brainrecon_diffusion::unet_motion::{fit_adapter_config, UNetMotionModel};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// The fields of runwayml/stable-diffusion-v1-5's `unet/config.json` that shape the model.
const SD15_UNET: &str = r#"{
  "attention_head_dim": 8,
  "block_out_channels": [320, 640, 1280, 1280],
  "cross_attention_dim": 768,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "layers_per_block": 2,
  "norm_num_groups": 32,
  "sample_size": 64,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
}"#;

fn name_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn normal(shape: impl Into<Shape>, seed: u64, scale: f32) -> candle_core::Result<Tensor> {
    let shape: Shape = shape.into();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data: Vec<f32> = (0..shape.elem_count())
        .map(|_| {
            let z: f32 = StandardNormal.sample(&mut rng);
            scale * z
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// Parameters drawn on demand: matrices N(0, 1/fan_in), norm scales 1, biases N(0, 0.01²).
/// It holds no positional table, so the modules compute theirs.
struct SeededWeights {
    seed: u64,
}

impl SimpleBackend for SeededWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let dims = s.dims().to_vec();
        let seed = name_seed(self.seed, name);
        let t = if dims.len() >= 2 {
            let fan_in: usize = dims[1..].iter().product();
            normal(s, seed, (fan_in as f32).powf(-0.5))?
        } else if name.ends_with("weight") {
            Tensor::ones(s, DType::F32, &Device::Cpu)?
        } else {
            normal(s, seed, 0.01)?
        };
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("no shape for {name}")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        !name.ends_with(".pe")
    }
}

fn peak_rss_gib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / (1024.0 * 1024.0))
}

struct Args {
    frames: usize,
    latent: usize,
    steps: usize,
    seed: u64,
    json: bool,
    image_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        frames: 16,
        latent: 32,
        steps: 1,
        seed: 0,
        json: false,
        image_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |f: &str| it.next().ok_or(format!("{f} needs a value"));
        let number = |v: String, f: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{f}: not a number: {v}"))
        };
        match flag.as_str() {
            "--frames" => a.frames = number(value("--frames")?, "--frames")? as usize,
            "--latent" => a.latent = number(value("--latent")?, "--latent")? as usize,
            "--steps" => a.steps = number(value("--steps")?, "--steps")? as usize,
            "--seed" => a.seed = number(value("--seed")?, "--seed")?,
            "--json" => a.json = true,
            "--image-only" => a.image_only = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args().map_err(|e| format!("bench_unet_motion: {e}"))?;
    let dev = Device::Cpu;
    let vb = VarBuilder::from_backend(
        Box::new(SeededWeights { seed: args.seed }),
        DType::F32,
        dev.clone(),
    );
    let t0 = Instant::now();
    let unet_config = UNet2DConditionConfig::from_json_str(SD15_UNET)?;
    let unet = UNet2DConditionModel::new(vb.clone(), &unet_config)?;
    let adapter_config = fit_adapter_config(&unet_config, &MotionAdapterConfig::default())?;
    let adapter = MotionAdapter::new(vb, &adapter_config)?;
    let image = unet.clone();
    let model = UNetMotionModel::from_parts(unet, adapter)?;
    let build_s = t0.elapsed().as_secs_f64();
    let (f, l) = (args.frames, args.latent);
    let sample = normal((1, 4, f, l, l), args.seed ^ 1, 1.0)?;
    let context = normal((1, 77, 768), args.seed ^ 2, 1.0)?;
    let timesteps = Tensor::new(&[981f32], &dev)?;
    let mut step_s = Vec::new();
    let mut shape = Vec::new();
    for _ in 0..args.steps {
        let t = Instant::now();
        let out = if args.image_only {
            let rows = sample
                .permute((0, 2, 1, 3, 4))?
                .contiguous()?
                .reshape((f, 4, l, l))?;
            image.forward(&rows, &timesteps, &context.repeat((f, 1, 1))?)?
        } else {
            model.forward(&sample, &timesteps, &context)?
        };
        // Reading a value forces the whole computation before the clock stops.
        let mean = out.abs()?.mean_all()?.to_scalar::<f32>()?;
        step_s.push(t.elapsed().as_secs_f64());
        if !mean.is_finite() {
            return Err("non-finite output".into());
        }
        shape = out.dims().to_vec();
    }
    let bench = if args.image_only {
        "unet_per_frame"
    } else {
        "unet_motion"
    };
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());
    let rss = peak_rss_gib();
    let steps: Vec<String> = step_s.iter().map(|s| format!("{s:.3}")).collect();
    if args.json {
        println!(
            "{{\"impl\": \"brainrecon\", \"bench\": \"{bench}\", \"frames\": {f}, \"latent\": {l}, \"dtype\": \"f32\", \"threads\": \"{threads}\", \"build_s\": {build_s:.3}, \"step_s\": [{}], \"peak_rss_gib\": {rss:.3}, \"output_shape\": {shape:?}}}",
            steps.join(", ")
        );
    } else {
        println!(
            "brainrecon {bench} f32, {f} frames at {l}x{l} latents (threads {threads}): build {build_s:.1} s, steps {step_s:?} s, peak RSS {rss:.2} GiB, output {shape:?}"
        );
    }
    Ok(())
}
