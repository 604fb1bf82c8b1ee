//! The U-Net's forward on the training tape (`unet_tape`) against candle's
//! `UNet2DConditionModel::forward` and its autograd: the same output, and the same gradient
//! for every parameter, the sample and the context, on shapes-ldm's U-Net and on two tiny
//! ones (conv and linear projections, two resnets and two transformer blocks per level), in
//! pools of 1 and 3 threads; a second step on the kept buffers gives the same bits.

mod common;

use brainrecon_diffusion::unet::{UNet2DConditionConfig, UNet2DConditionModel};
use brainrecon_diffusion::unet_tape::unet_forward_on_tape;
use brainrecon_nn::init::init_parameters;
use brainrecon_nn::params::Parameters;
use brainrecon_nn::tape::Tape;
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// shapes-ldm's U-Net (`PriorConfig::shapes_ldm`'s `unet_config(&[32, 64], &[false, true],
/// 8, 64, 32)`): convolutions only at 16×16, cross-attention at 8×8 and in the middle, 32
/// heads of 2.
const SHAPES_LDM: &str = r#"{
  "act_fn": "silu", "attention_head_dim": 32, "block_out_channels": [32, 64],
  "cross_attention_dim": 64, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
  "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
  "mid_block_type": "UNetMidBlock2DCrossAttn", "in_channels": 4, "out_channels": 4,
  "layers_per_block": 1, "norm_num_groups": 8, "norm_eps": 1e-5, "flip_sin_to_cos": true,
  "freq_shift": 0, "sample_size": 16, "use_linear_projection": false
}"#;

/// A tiny SD 2.x-style U-Net: linear projections, attention on every level (16×16 too), two
/// resnets and two transformer blocks per level, per-level heads.
const TINY_LINEAR: &str = r#"{
  "attention_head_dim": [2, 4], "block_out_channels": [8, 16], "cross_attention_dim": 12,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
  "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  "in_channels": 3, "out_channels": 5, "layers_per_block": 2,
  "transformer_layers_per_block": 2, "norm_num_groups": 4, "norm_eps": 1e-6,
  "flip_sin_to_cos": false, "freq_shift": 1, "use_linear_projection": true
}"#;

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| rng.gen_range(-1.0..1.0f32) * scale)
        .collect()
}

/// A U-Net with seeded weights, every tensor moved off its initial value (norms' 1 and 0,
/// zero biases) so that no gradient is trivially structured.
fn model(config: &UNet2DConditionConfig, seed: u64) -> (UNet2DConditionModel, Parameters) {
    let (unet, params) = init_parameters(
        |vb| UNet2DConditionModel::new(vb, config),
        seed,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    for (_, var) in params.vars() {
        let v = values(var.as_tensor());
        let moved: Vec<f32> = v
            .iter()
            .zip(random(&mut rng, v.len(), 0.1))
            .map(|(a, b)| a + b)
            .collect();
        var.set(&Tensor::from_vec(moved, var.dims(), &Device::Cpu).unwrap())
            .unwrap();
    }
    (unet, params)
}

struct Case {
    sample: Vec<f32>,
    sample_dims: [usize; 4],
    context: Vec<f32>,
    context_dims: [usize; 3],
    timesteps: Vec<f32>,
    /// The upstream gradient of the output.
    upstream: Vec<f32>,
}

fn case(config: &UNet2DConditionConfig, b: usize, side: usize, tokens: usize) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let sample_dims = [b, config.in_channels, side, side];
    let context_dims = [b, tokens, config.cross_attention_dim];
    Case {
        sample: random(&mut rng, sample_dims.iter().product(), 1.5),
        sample_dims,
        context: random(&mut rng, context_dims.iter().product(), 1.0),
        context_dims,
        // one early, one late, one fractional
        timesteps: [3.0, 917.0, 421.5][..b].to_vec(),
        upstream: random(&mut rng, b * config.out_channels * side * side, 1.0),
    }
}

/// candle's forward and gradients: output, grads of the sample, the context and every
/// parameter (by name).
fn candle_side(
    unet: &UNet2DConditionModel,
    params: &Parameters,
    c: &Case,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<(String, Vec<f32>)>) {
    let dev = Device::Cpu;
    let sample = Var::from_vec(c.sample.clone(), c.sample_dims.to_vec(), &dev).unwrap();
    let context = Var::from_vec(c.context.clone(), c.context_dims.to_vec(), &dev).unwrap();
    let t = Tensor::new(c.timesteps.as_slice(), &dev).unwrap();
    let out = unet.forward(&sample, &t, &context).unwrap();
    let upstream = Tensor::from_vec(c.upstream.clone(), out.dims(), &dev).unwrap();
    let grads = (&out * &upstream)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let grad = |t: &Tensor| values(grads.get(t).expect("candle gradient"));
    let named = params
        .vars()
        .into_iter()
        .map(|(name, var)| {
            let g = grad(var.as_tensor());
            (name, g)
        })
        .collect();
    (values(&out), grad(&sample), grad(&context), named)
}

/// The tape's output, sample and context gradients, and every parameter's (name, gradient),
/// recorded twice on the same tape (the second step reuses the buffers); both steps'
/// bits are returned.
#[allow(clippy::type_complexity)]
fn tape_side(
    unet: &UNet2DConditionModel,
    params: &Parameters,
    c: &Case,
) -> Vec<(Vec<f32>, Vec<f32>, Vec<f32>, Vec<(String, Vec<f32>)>)> {
    let mut tape = Tape::new();
    let mut steps = Vec::new();
    for _ in 0..2 {
        tape.clear();
        let sample = tape.parameter(&c.sample_dims, &c.sample).unwrap();
        let context = tape.parameter(&c.context_dims, &c.context).unwrap();
        let on = unet_forward_on_tape(unet, &mut tape, sample, &c.timesteps, context, &|_| true)
            .unwrap();
        tape.backward_from(on.output, &c.upstream).unwrap();
        let mut named = Vec::new();
        for (name, t, id) in &on.params {
            // the name is the tensor's diffusers name
            let var = params
                .get(name)
                .unwrap_or_else(|| panic!("no parameter {name}"));
            assert_eq!(
                var.as_tensor().id(),
                t.id(),
                "{name} is bound to another tensor"
            );
            named.push((name.clone(), tape.grad(*id).expect(name).to_vec()));
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        steps.push((
            tape.value(on.output).to_vec(),
            tape.grad(sample).unwrap().to_vec(),
            tape.grad(context).unwrap().to_vec(),
            named,
        ));
    }
    steps
}

/// Output within 1e-5 of its largest value; every gradient within 1e-4 of the larger of its
/// own largest value and a hundredth of the largest gradient of its kind (parameters: of all
/// parameters).
fn compare(label: &str, config_json: &str, b: usize, side: usize, tokens: usize, seed: u64) {
    let config = UNet2DConditionConfig::from_json_str(config_json).unwrap();
    let (unet, params) = model(&config, seed);
    let c = case(&config, b, side, tokens);
    let (out, d_sample, d_context, named) = candle_side(&unet, &params, &c);
    let largest_param_grad = named.iter().fold(0f32, |m, (_, g)| m.max(max_abs(g)));
    assert!(largest_param_grad > 1e-3, "{label}: degenerate gradients");
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let steps = pool.install(|| tape_side(&unet, &params, &c));
        let (t_out, t_sample, t_context, t_named) = &steps[0];
        let at = format!("{label}, {threads} threads");
        let err = max_diff(&out, t_out);
        assert!(err <= 1e-5 * max_abs(&out), "{at}: output off by {err}");
        let mut worst = err / max_abs(&out);
        for (what, want, got) in [
            ("sample", &d_sample, t_sample),
            ("context", &d_context, t_context),
        ] {
            let err = max_diff(want, got);
            worst = worst.max(err / max_abs(want));
            assert!(
                err <= 1e-4 * max_abs(want),
                "{at}: d{what} off by {err} (largest {})",
                max_abs(want)
            );
        }
        // every parameter is bound, once
        let names: Vec<&String> = t_named.iter().map(|(n, _)| n).collect();
        let expected: Vec<&String> = named.iter().map(|(n, _)| n).collect();
        assert_eq!(names, expected, "{at}: bound parameters");
        for ((name, want), (_, got)) in named.iter().zip(t_named) {
            let err = max_diff(want, got);
            let scale = max_abs(want).max(largest_param_grad / 100.0);
            worst = worst.max(err / scale);
            assert!(
                err <= 1e-4 * scale,
                "{at}: d{name} off by {err} (scale {scale})"
            );
        }
        eprintln!("{at}: largest relative error {worst:.2e}");
        // the second step on the kept buffers: the same bits
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let (s_out, s_sample, s_context, s_named) = &steps[1];
        assert_eq!(bits(t_out), bits(s_out), "{at}: second step's output");
        assert_eq!(
            bits(t_sample),
            bits(s_sample),
            "{at}: second step's dsample"
        );
        assert_eq!(
            bits(t_context),
            bits(s_context),
            "{at}: second step's dcontext"
        );
        for ((name, a), (_, b)) in t_named.iter().zip(s_named) {
            assert_eq!(bits(a), bits(b), "{at}: second step's d{name}");
        }
    }
}

#[test]
fn shapes_ldm_unet_on_the_tape_matches_candle() {
    compare("shapes-ldm", SHAPES_LDM, 2, 16, 16, 11);
}

#[test]
fn tiny_sd_unet_on_the_tape_matches_candle() {
    let json =
        std::fs::read_to_string(common::fixtures().join("tiny-sd/unet/config.json")).unwrap();
    compare("tiny-sd", &json, 3, 8, 5, 12);
}

#[test]
fn linear_projection_unet_on_the_tape_matches_candle() {
    compare("tiny linear projections", TINY_LINEAR, 2, 16, 3, 13);
}

/// Frozen tensors are constant inputs: only the trainable ones are listed, with candle's
/// gradients; the context's gradient still flows (through the frozen `to_k`/`to_v`).
#[test]
fn only_trainable_tensors_are_parameters() {
    let config = UNet2DConditionConfig::from_json_str(SHAPES_LDM).unwrap();
    let (unet, params) = model(&config, 21);
    let c = case(&config, 2, 16, 4);
    let (_, _, d_context, named) = candle_side(&unet, &params, &c);
    let trainable = |name: &str| name.contains("attn2.to_k") || name.contains("attn2.to_v");
    let mut tape = Tape::new();
    let sample = tape.input(&c.sample_dims, &c.sample).unwrap();
    let context = tape.parameter(&c.context_dims, &c.context).unwrap();
    let on =
        unet_forward_on_tape(&unet, &mut tape, sample, &c.timesteps, context, &trainable).unwrap();
    tape.backward_from(on.output, &c.upstream).unwrap();
    assert!(tape.grad(sample).is_none());
    let want: Vec<&(String, Vec<f32>)> = named.iter().filter(|(n, _)| trainable(n)).collect();
    assert_eq!(on.params.len(), want.len());
    // to_k and to_v of one attention in the down block, one in the middle, two in the up block
    assert_eq!(want.len(), 8);
    for (name, expected) in want {
        let (_, _, id) = on.params.iter().find(|(n, _, _)| n == name).unwrap();
        let err = max_diff(expected, tape.grad(*id).unwrap());
        assert!(err <= 1e-4 * max_abs(expected), "d{name} off by {err}");
    }
    let err = max_diff(&d_context, tape.grad(context).unwrap());
    assert!(err <= 1e-4 * max_abs(&d_context), "dcontext off by {err}");
}

/// What the tape does not cover is refused, not miscomputed.
#[test]
fn uncovered_inputs_are_refused() {
    let config = UNet2DConditionConfig::from_json_str(SHAPES_LDM).unwrap();
    let (unet, _) = model(&config, 3);
    let mut tape = Tape::new();
    let sample = tape.input(&[1, 4, 9, 9], &[0.0; 324]).unwrap();
    let context = tape.input(&[1, 2, 64], &[0.0; 128]).unwrap();
    let err = unet_forward_on_tape(&unet, &mut tape, sample, &[1.0], context, &|_| true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("multiple of 2"), "{err}");
    let sample = tape.input(&[1, 4, 8, 8], &[0.0; 256]).unwrap();
    let err = unet_forward_on_tape(&unet, &mut tape, sample, &[1.0, 2.0], context, &|_| true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 timesteps for 1 samples"), "{err}");
    let narrow = tape.input(&[1, 2, 32], &[0.0; 64]).unwrap();
    let err = unet_forward_on_tape(&unet, &mut tape, sample, &[1.0], narrow, &|_| true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("context") && err.contains("64"), "{err}");
}
