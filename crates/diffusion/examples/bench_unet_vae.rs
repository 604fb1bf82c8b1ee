//! CPU benchmark: one full-size Stable Diffusion 1.5 U-Net step at 512 px (latents
//! [2, 4, 64, 64], batch 2 as for classifier-free guidance, context [2, 77, 768]) and one VAE
//! decode at 512 px (latents [1, 4, 64, 64] → image [1, 3, 512, 512]), in f32 and/or f16.
//! Weights are random, drawn from a seeded ChaCha generator per tensor (no download); the
//! configs are SD 1.5's `unet/config.json` and `vae/config.json`, embedded below.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p brainrecon-diffusion --example bench_unet_vae -- \
//!     --model unet|vae --dtype f32|f16 [--steps 1] [--seed 0] [--json] [--profile]
//! ```
//! `--profile` runs one forward pass instead, timing each kind of module (convolutions, group
//! norms, attention, projections...) and printing the sums.
//! `--device cuda[:N]` runs on a GPU (a build with `--features cuda`); the first step there
//! includes the kernels' loading, so time several steps and read the later ones.
//! Run one model and dtype per process so that the reported peak RSS (VmHWM) is that
//! configuration's own; `tools/bench/diffusion.sh` does so and runs diffusers alongside.

use std::time::Instant;

use brainrecon_diffusion::unet::{UNet2DConditionConfig, UNet2DConditionModel};
use brainrecon_diffusion::vae::{AutoencoderKL, AutoencoderKLConfig};
use brainrecon_nn::Error;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// runwayml/stable-diffusion-v1-5 `unet/config.json` (the fields that matter).
const SD15_UNET: &str = r#"{
  "_class_name": "UNet2DConditionModel",
  "act_fn": "silu",
  "attention_head_dim": 8,
  "block_out_channels": [320, 640, 1280, 1280],
  "center_input_sample": false,
  "cross_attention_dim": 768,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "downsample_padding": 1,
  "flip_sin_to_cos": true,
  "freq_shift": 0,
  "in_channels": 4,
  "layers_per_block": 2,
  "mid_block_scale_factor": 1,
  "norm_eps": 1e-05,
  "norm_num_groups": 32,
  "out_channels": 4,
  "sample_size": 64,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
}"#;

/// runwayml/stable-diffusion-v1-5 `vae/config.json`.
const SD15_VAE: &str = r#"{
  "_class_name": "AutoencoderKL",
  "act_fn": "silu",
  "block_out_channels": [128, 256, 512, 512],
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "in_channels": 3,
  "latent_channels": 4,
  "layers_per_block": 2,
  "norm_num_groups": 32,
  "out_channels": 3,
  "sample_size": 512,
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
}"#;

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn normal_tensor(shape: impl Into<Shape>, seed: u64, scale: f32) -> candle_core::Result<Tensor> {
    let shape: Shape = shape.into();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data: Vec<f32> = (0..shape.elem_count())
        .map(|_| {
            let v: f32 = StandardNormal.sample(&mut rng);
            v * scale
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// Every requested parameter is drawn on demand from ChaCha8 seeded by (seed, name):
/// weights N(0, 1/fan_in), norm weights 1, biases N(0, 0.01²).
struct SeededWeights {
    seed: u64,
}

impl SimpleBackend for SeededWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let seed = self.seed ^ fnv1a(name);
        let dims = s.dims().to_vec();
        let t = if dims.len() >= 2 {
            let fan_in: usize = dims[1..].iter().product();
            normal_tensor(s, seed, (fan_in as f32).powf(-0.5))?
        } else if name.ends_with("weight") {
            Tensor::ones(s, DType::F32, &Device::Cpu)?
        } else {
            normal_tensor(s, seed, 0.01)?
        };
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("no shape for {name}")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

fn peak_rss_gib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / (1024.0 * 1024.0))
        .unwrap_or(f64::NAN)
}

struct Args {
    model: String,
    dtype: DType,
    steps: usize,
    seed: u64,
    json: bool,
    device: Device,
    profile: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        model: "unet".into(),
        dtype: DType::F32,
        steps: 1,
        seed: 0,
        json: false,
        device: Device::Cpu,
        profile: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => {
                a.model = value()?;
                if a.model != "unet" && a.model != "vae" {
                    return Err(format!("--model unet|vae, found {}", a.model));
                }
            }
            "--dtype" => {
                a.dtype = match value()?.as_str() {
                    "f32" => DType::F32,
                    "f16" => DType::F16,
                    "bf16" => DType::BF16,
                    other => return Err(format!("--dtype f32|f16|bf16, found {other}")),
                }
            }
            "--steps" => a.steps = value()?.parse().map_err(|e| format!("--steps: {e}"))?,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--json" => a.json = true,
            "--profile" => a.profile = true,
            "--device" => {
                a.device = match value()?.as_str() {
                    "cpu" => Device::Cpu,
                    "cuda" => Device::new_cuda(0).map_err(|e| format!("--device cuda: {e}"))?,
                    other => {
                        let n = other
                            .strip_prefix("cuda:")
                            .and_then(|n| n.parse().ok())
                            .ok_or(format!("--device cpu|cuda|cuda:N, found {other}"))?;
                        Device::new_cuda(n).map_err(|e| format!("--device {other}: {e}"))?
                    }
                }
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// Runs `forward` `steps` times, recording each call's seconds in `step_s`; fails on a
/// non-finite output (a broken model would otherwise time garbage). Returns the output shape.
fn time_steps<F>(
    steps: usize,
    label: &str,
    step_s: &mut Vec<f64>,
    mut forward: F,
) -> Result<Vec<usize>, Box<dyn std::error::Error>>
where
    F: FnMut() -> brainrecon_nn::Result<Tensor>,
{
    let mut shape = vec![];
    for _ in 0..steps {
        let t = Instant::now();
        let out = forward()?;
        // Reading a value forces the whole computation before the clock stops.
        let v = out
            .to_dtype(DType::F32)?
            .abs()?
            .mean_all()?
            .to_scalar::<f32>()?;
        step_s.push(t.elapsed().as_secs_f64());
        if !v.is_finite() {
            return Err(Box::new(Error::InvalidInput {
                name: "output",
                msg: format!("non-finite {label} output"),
            }));
        }
        shape = out.dims().to_vec();
    }
    Ok(shape)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args().map_err(|e| format!("bench_unet_vae: {e}"))?;
    let dev = args.device.clone();
    let dtype_name = match args.dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        _ => "f16",
    };
    let vb = VarBuilder::from_backend(
        Box::new(SeededWeights { seed: args.seed }),
        args.dtype,
        dev.clone(),
    );
    let t0 = Instant::now();
    let mut step_s = Vec::new();
    let out_shape: Vec<usize>;
    let build_s;
    if args.model == "unet" {
        let cfg = UNet2DConditionConfig::from_json_str(SD15_UNET)?;
        let unet = UNet2DConditionModel::new(vb, &cfg)?;
        build_s = t0.elapsed().as_secs_f64();
        let sample = normal_tensor((2, 4, 64, 64), args.seed ^ 1, 1.0)?
            .to_dtype(args.dtype)?
            .to_device(&dev)?;
        let context = normal_tensor((2, 77, 768), args.seed ^ 2, 1.0)?
            .to_dtype(args.dtype)?
            .to_device(&dev)?;
        let timesteps = Tensor::new(&[981f32, 981.], &dev)?;
        if args.profile {
            let p = profile::Prof::default();
            let t = Instant::now();
            profile::unet(&p, &unet, &sample, &timesteps, &context)?;
            p.report(t.elapsed().as_secs_f64());
            return Ok(());
        }
        out_shape = time_steps(args.steps, "U-Net", &mut step_s, || {
            unet.forward(&sample, &timesteps, &context)
        })?;
    } else {
        let cfg = AutoencoderKLConfig::from_json_str(SD15_VAE)?;
        let vae = AutoencoderKL::new(vb, &cfg)?;
        build_s = t0.elapsed().as_secs_f64();
        let z = normal_tensor((1, 4, 64, 64), args.seed ^ 3, 1.0)?
            .to_dtype(args.dtype)?
            .to_device(&dev)?;
        if args.profile {
            let p = profile::Prof::default();
            let t = Instant::now();
            profile::vae_decode(&p, &vae, &z)?;
            p.report(t.elapsed().as_secs_f64());
            return Ok(());
        }
        out_shape = time_steps(args.steps, "VAE", &mut step_s, || vae.decode(&z))?;
    }
    let rss = peak_rss_gib();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());
    let what = if args.model == "unet" {
        "unet_step_512_b2"
    } else {
        "vae_decode_512_b1"
    };
    if args.json {
        let steps: Vec<String> = step_s.iter().map(|s| format!("{s:.5}")).collect();
        println!(
            "{{\"impl\": \"brainrecon\", \"bench\": \"{what}\", \"dtype\": \"{dtype_name}\", \"threads\": \"{threads}\", \"build_s\": {build_s:.3}, \"step_s\": [{}], \"peak_rss_gib\": {rss:.3}, \"output_shape\": {out_shape:?}}}",
            steps.join(", ")
        );
    } else {
        println!(
            "brainrecon {what} {dtype_name} (threads {threads}): build {build_s:.1} s, steps {:?} s, peak RSS {rss:.2} GiB, output {out_shape:?}",
            step_s.iter().map(|s| (s * 100.0).round() / 100.0).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// `--profile`: one forward pass re-assembled from the models' public modules, with the
/// seconds spent in each kind of module summed (candle's CPU ops run synchronously, so the
/// clock around a call is that call's time). The sums show where a step's time goes.
mod profile {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::time::Instant;

    use brainrecon_diffusion::unet::{
        timestep_features, BasicTransformerBlock, Projection, ResnetBlock2D, Transformer2DModel,
        UNet2DConditionModel,
    };
    use brainrecon_diffusion::vae::AutoencoderKL;
    use brainrecon_nn::layers::{self as nn, Attention};
    use brainrecon_nn::Result;
    use candle_core::Tensor;

    #[derive(Default)]
    pub struct Prof(RefCell<BTreeMap<&'static str, (f64, usize)>>);

    impl Prof {
        fn t<T>(&self, label: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
            let start = Instant::now();
            let out = f()?;
            let mut m = self.0.borrow_mut();
            let e = m.entry(label).or_insert((0.0, 0));
            e.0 += start.elapsed().as_secs_f64();
            e.1 += 1;
            Ok(out)
        }

        pub fn report(&self, total: f64) {
            let m = self.0.borrow();
            let mut rows: Vec<_> = m.iter().collect();
            rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
            let sum: f64 = rows.iter().map(|r| r.1 .0).sum();
            println!("total {total:.2} s, accounted {sum:.2} s");
            for (label, (s, n)) in rows {
                println!(
                    "{label:>24} {s:8.3} s {:5.1}% ({n} calls)",
                    100.0 * s / total
                );
            }
        }
    }

    fn resnet(p: &Prof, r: &ResnetBlock2D, x: &Tensor, temb: Option<&Tensor>) -> Result<Tensor> {
        let h = p.t("groupnorm+silu", || r.norm1.forward_silu(x))?;
        let mut h = p.t("conv3x3", || r.conv1.forward(&h))?;
        if let (Some(proj), Some(t)) = (&r.time_emb_proj, temb) {
            h = p.t("temb add", || {
                let t = proj.forward(&nn::silu(t)?)?;
                let (b, c) = t.dims2()?;
                Ok(h.broadcast_add(&t.reshape((b, c, 1, 1))?)?)
            })?;
        }
        let h = p.t("groupnorm+silu", || r.norm2.forward_silu(&h))?;
        let h = p.t("conv3x3", || r.conv2.forward(&h))?;
        let skip = match &r.conv_shortcut {
            Some(c) => p.t("conv1x1", || c.forward(x))?,
            None => x.clone(),
        };
        p.t("residual add", || Ok((skip + h)?))
    }

    fn attention(p: &Prof, a: &Attention, x: &Tensor, ctx: Option<&Tensor>) -> Result<Tensor> {
        let c = ctx.unwrap_or(x);
        let q = p.t("linear qkv", || a.to_q.forward(x))?;
        let k = p.t("linear qkv", || a.to_k.forward(c))?;
        let v = p.t("linear qkv", || a.to_v.forward(c))?;
        let label = if ctx.is_some() {
            "attention core (cross)"
        } else {
            "attention core (self)"
        };
        let o = p.t(label, || {
            nn::multi_head_attention(&q, &k, &v, a.heads, false, None, a.upcast_attention)
        })?;
        p.t("linear out", || a.to_out.forward(&o))
    }

    fn block(p: &Prof, b: &BasicTransformerBlock, x: &Tensor, ctx: &Tensor) -> Result<Tensor> {
        let h = p.t("layernorm", || b.norm1.forward(x))?;
        let h = attention(p, &b.attn1, &h, None)?;
        let x = p.t("residual add", || Ok((h + x)?))?;
        let h = p.t("layernorm", || b.norm2.forward(&x))?;
        let h = attention(p, &b.attn2, &h, Some(ctx))?;
        let x = p.t("residual add", || Ok((h + x)?))?;
        let h = p.t("layernorm", || b.norm3.forward(&x))?;
        let h = p.t("linear geglu", || b.ff.geglu.proj.forward(&h))?;
        let h = p.t("geglu gate", || b.ff.geglu.gate(&h))?;
        let h = p.t("linear ff out", || b.ff.out.forward(&h))?;
        p.t("residual add", || Ok((h + x)?))
    }

    fn transformer(p: &Prof, t: &Transformer2DModel, x: &Tensor, ctx: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let y = p.t("groupnorm", || t.norm.forward(x))?;
        let Projection::Conv(pin) = &t.proj_in else {
            unreachable!("SD 1.5 projects with 1x1 convolutions")
        };
        let y = p.t("conv1x1", || pin.forward(&y))?;
        let mut y = p.t("permute", || {
            let c = y.dim(1)?;
            Ok(y.permute((0, 2, 3, 1))?.reshape((b, h * w, c))?)
        })?;
        for blk in &t.transformer_blocks {
            y = block(p, blk, &y, ctx)?;
        }
        let y = p.t("permute", || {
            let c = y.dim(2)?;
            Ok(y.reshape((b, h, w, c))?
                .permute((0, 3, 1, 2))?
                .contiguous()?)
        })?;
        let Projection::Conv(pout) = &t.proj_out else {
            unreachable!()
        };
        let y = p.t("conv1x1", || pout.forward(&y))?;
        p.t("residual add", || Ok((y + x)?))
    }

    pub fn unet(
        p: &Prof,
        u: &UNet2DConditionModel,
        sample: &Tensor,
        timesteps: &Tensor,
        ctx: &Tensor,
    ) -> Result<Tensor> {
        let temb = p.t("time embedding", || {
            let f = timestep_features(timesteps, u.config.block_out_channels[0], true, 0.0)?;
            u.time_embedding
                .forward(&f.to_dtype(u.conv_in.weight.dtype())?)
        })?;
        let sample = sample.to_dtype(u.conv_in.weight.dtype())?;
        let ctx = ctx.to_dtype(u.conv_in.weight.dtype())?;
        let mut x = p.t("conv3x3", || u.conv_in.forward(&sample))?;
        let mut skips = vec![x.clone()];
        for blk in &u.down_blocks {
            for (i, r) in blk.resnets.iter().enumerate() {
                x = resnet(p, r, &x, Some(&temb))?;
                if let Some(a) = blk.attentions.get(i) {
                    x = transformer(p, a, &x, &ctx)?;
                }
                skips.push(x.clone());
            }
            if let Some(d) = &blk.downsampler {
                x = p.t("conv3x3 down", || d.forward(&x))?;
                skips.push(x.clone());
            }
        }
        let m = &u.mid_block;
        x = resnet(p, &m.resnets[0], &x, Some(&temb))?;
        x = transformer(p, &m.attentions[0], &x, &ctx)?;
        x = resnet(p, &m.resnets[1], &x, Some(&temb))?;
        for blk in &u.up_blocks {
            for (i, r) in blk.resnets.iter().enumerate() {
                let s = skips.pop().expect("one skip per resnet");
                x = p.t("cat", || Ok(Tensor::cat(&[&x, &s], 1)?))?;
                x = resnet(p, r, &x, Some(&temb))?;
                if let Some(a) = blk.attentions.get(i) {
                    x = transformer(p, a, &x, &ctx)?;
                }
            }
            if let Some(up) = &blk.upsampler {
                let y = p.t("upsample", || nn::upsample_nearest_2x(&x))?;
                x = p.t("conv3x3", || up.conv.forward(&y))?;
            }
        }
        let y = p.t("groupnorm+silu", || u.conv_norm_out.forward_silu(&x))?;
        p.t("conv3x3", || u.conv_out.forward(&y))
    }

    pub fn vae_decode(p: &Prof, v: &AutoencoderKL, z: &Tensor) -> Result<Tensor> {
        let z = z.to_dtype(v.decoder.conv_in.weight.dtype())?;
        let z = match &v.post_quant_conv {
            Some(c) => p.t("conv1x1", || c.forward(&z))?,
            None => z,
        };
        let d = &v.decoder;
        let mut x = p.t("conv3x3", || d.conv_in.forward(&z))?;
        x = resnet(p, &d.mid_block.resnets[0], &x, None)?;
        if let Some(a) = &d.mid_block.attention {
            let (b, c, h, w) = x.dims4()?;
            let seq = p.t("groupnorm", || {
                a.group_norm.forward(&x.reshape((b, c, h * w))?)
            })?;
            let seq = p.t("permute", || Ok(seq.transpose(1, 2)?.contiguous()?))?;
            let out = attention(p, &a.attn, &seq, None)?;
            let out = p.t("permute", || {
                Ok(out.transpose(1, 2)?.reshape((b, c, h, w))?)
            })?;
            x = p.t("residual add", || Ok((out + &x)?))?;
        }
        x = resnet(p, &d.mid_block.resnets[1], &x, None)?;
        for blk in &d.up_blocks {
            for r in &blk.resnets {
                x = resnet(p, r, &x, None)?;
            }
            if let Some(up) = &blk.upsampler {
                let y = p.t("upsample", || nn::upsample_nearest_2x(&x))?;
                x = p.t("conv3x3", || up.conv.forward(&y))?;
            }
        }
        let y = p.t("groupnorm+silu", || d.conv_norm_out.forward_silu(&x))?;
        p.t("conv3x3", || d.conv_out.forward(&y))
    }
}
