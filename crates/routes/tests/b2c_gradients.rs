//! B2C's training step against PyTorch: the loss and the gradients of every encoder and U-Net
//! parameter for the three objectives, on the tiny configuration of
//! tools/fixtures/b2c_gradients.py (diffusers' BasicTransformerBlock and UNet2DConditionModel),
//! through candle's autograd and on the project's tape (1 and 3 threads), at the same
//! tolerances.

use brainrecon_brain::b2c::BrainToContextEncoder;
use brainrecon_brain::b2c_tape::encoder_forward_on_tape;
use brainrecon_diffusion::pipeline::{DType, Device, Tensor};
use brainrecon_diffusion::scheduler::{NoiseSchedule, PredictionType, SchedulerConfig};
use brainrecon_diffusion::unet::{UNet2DConditionConfig, UNet2DConditionModel};
use brainrecon_nn::params::Parameters;
use brainrecon_nn::tape::Tape;
use brainrecon_nn::weights::{Overlay, Weights};
use brainrecon_routes::b2c::tape::b2c_step_on_tape;
use brainrecon_routes::b2c::train::{b2c_loss, BatchInputs};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/b2c")
}

/// Every tensor of a safetensors file, f32 (int64 timesteps as f32 too).
fn load(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(DType::F32).unwrap()))
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> (f32, f32) {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    (diff, scale)
}

/// The encoder and the U-Net with all their tensors trainable, as `b2c train --tune unet`.
fn trainable(dir: &Path) -> (BrainToContextEncoder, UNet2DConditionModel, Parameters) {
    let encoder_weights = Weights::from_files(
        &[dir.join("encoder/model.safetensors")],
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let (encoder_overlay, encoder_vars) =
        Overlay::trainable(&encoder_weights, |_| true, DType::F32).unwrap();
    let config =
        brainrecon_brain::b2c::BrainToContextConfig::from_file(&dir.join("encoder/config.json"))
            .unwrap();
    let encoder = BrainToContextEncoder::new(encoder_overlay.var_builder(), &config).unwrap();
    let unet_weights =
        Weights::from_component(&dir.join("unet"), DType::F32, &Device::Cpu).unwrap();
    let (unet_overlay, unet_vars) =
        Overlay::trainable(&unet_weights, |_| true, DType::F32).unwrap();
    let unet_config = UNet2DConditionConfig::from_file(&dir.join("unet/config.json")).unwrap();
    let unet = UNet2DConditionModel::new(unet_overlay.var_builder(), &unet_config).unwrap();
    let vars = encoder_vars
        .into_iter()
        .map(|(n, v)| (format!("encoder.{n}"), v))
        .chain(unet_vars.into_iter().map(|(n, v)| (format!("unet.{n}"), v)));
    (encoder, unet, Parameters::from_vars(vars).unwrap())
}

/// One objective's PyTorch step (`io_<objective>.safetensors`) and the models it ran.
struct Golden {
    objective: &'static str,
    io: HashMap<String, Tensor>,
    encoder: BrainToContextEncoder,
    unet: UNet2DConditionModel,
    params: Parameters,
    schedule: NoiseSchedule,
    timesteps: Vec<usize>,
    clip_weight: f64,
}

impl Golden {
    fn load(objective: &'static str, prediction: PredictionType) -> Self {
        let dir = fixtures();
        let io = load(&dir.join(format!("io_{objective}.safetensors")));
        let (encoder, unet, params) = trainable(&dir);
        let mut schedule = NoiseSchedule::new(&SchedulerConfig::stable_diffusion()).unwrap();
        schedule.prediction_type = prediction;
        let timesteps: Vec<usize> = io["timesteps"]
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|&t| t as usize)
            .collect();
        let clip_weight = io["clip_weight"].to_vec1::<f32>().unwrap()[0] as f64;
        Golden {
            objective,
            io,
            encoder,
            unet,
            params,
            schedule,
            timesteps,
            clip_weight,
        }
    }

    fn inputs(&self) -> BatchInputs<'_> {
        BatchInputs {
            betas: &self.io["betas"],
            latents: &self.io["latents"],
            noise: &self.io["noise"],
            timesteps: &self.timesteps,
            true_context: &self.io["true_context"],
            context_dropout: None,
        }
    }

    /// Our (total, diffusion, clip) losses, the encoder's context and every parameter's
    /// gradient (`grad_of`) against PyTorch's.
    fn assert_matches(
        &self,
        what: &str,
        losses: [f32; 3],
        context: &Tensor,
        grad_of: impl Fn(&Tensor) -> Option<Tensor>,
    ) {
        let io = &self.io;
        for (name, ours) in ["loss", "diffusion", "clip"].into_iter().zip(losses) {
            let theirs = io[name].to_vec1::<f32>().unwrap()[0];
            assert!(
                (ours - theirs).abs() <= 1e-4 * theirs.abs().max(1.0),
                "{what} {name}: {ours} vs PyTorch {theirs}"
            );
        }
        let (diff, scale) = max_abs_diff(context, &io["context"]);
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{what} context: {diff} (scale {scale})"
        );
        let mut checked = 0;
        for (name, var) in self.params.vars() {
            let expected = io
                .get(&format!("grad.{name}"))
                .unwrap_or_else(|| panic!("no PyTorch gradient for {name}"));
            let ours = grad_of(var.as_tensor())
                .unwrap_or_else(|| panic!("{what}: {name} got no gradient"));
            let (diff, scale) = max_abs_diff(&ours, expected);
            assert!(
                diff <= 2e-3 * scale + 1e-6,
                "{what} grad {name}: max |Δ| {diff}, max |PyTorch| {scale}"
            );
            checked += 1;
        }
        let expected = io.keys().filter(|k| k.starts_with("grad.")).count();
        assert_eq!(checked, expected, "every PyTorch parameter is one of ours");
    }
}

fn check_objective(objective: &'static str, prediction: PredictionType) {
    let g = Golden::load(objective, prediction);
    let (total, diffusion, clip) = b2c_loss(
        &g.encoder,
        &g.unet,
        &g.schedule,
        &g.inputs(),
        g.clip_weight,
        None,
    )
    .unwrap();
    let losses = [&total, &diffusion, &clip].map(|l| l.to_scalar::<f32>().unwrap());
    let context = g.encoder.forward(&g.io["betas"], None).unwrap();
    let grads = total.backward().unwrap();
    g.assert_matches(objective, losses, &context, |t| grads.get(t).cloned());
}

/// The same checks as [`check_objective`] on the tape's step, on `threads` threads.
fn check_objective_on_tape(objective: &'static str, prediction: PredictionType, threads: usize) {
    let g = Golden::load(objective, prediction);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut tape = Tape::new();
    let (step, context) = pool.install(|| {
        let step = b2c_step_on_tape(
            &g.encoder,
            &g.unet,
            &g.schedule,
            &g.inputs(),
            g.clip_weight,
            None,
            &|_| true,
            &mut tape,
        )
        .unwrap();
        let mut encoder_tape = Tape::new();
        let encoded =
            encoder_forward_on_tape(&g.encoder, &mut encoder_tape, &g.io["betas"], None).unwrap();
        let shape = encoder_tape.shape(encoded.context).to_vec();
        let context =
            Tensor::from_slice(encoder_tape.value(encoded.context), shape, &Device::Cpu).unwrap();
        (step, context)
    });
    let losses = [step.loss.total, step.loss.diffusion, step.loss.clip].map(|l| l as f32);
    let what = format!("{} on the tape, {threads} threads", g.objective);
    g.assert_matches(&what, losses, &context, |t| step.grads.get(t).cloned());
}

#[test]
fn tape_steps_match_pytorch() {
    for threads in [1, 3] {
        check_objective_on_tape("eps", PredictionType::Epsilon, threads);
        check_objective_on_tape("v", PredictionType::VPrediction, threads);
        check_objective_on_tape("x0", PredictionType::Sample, threads);
    }
}

#[test]
fn epsilon_step_matches_pytorch() {
    check_objective("eps", PredictionType::Epsilon);
}

#[test]
fn v_prediction_step_matches_pytorch() {
    check_objective("v", PredictionType::VPrediction);
}

#[test]
fn x0_step_matches_pytorch() {
    check_objective("x0", PredictionType::Sample);
}
