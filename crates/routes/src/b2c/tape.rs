//! B2C's training step on the project's own tape ([`brainrecon_nn::tape`]): the same loss as
//! [`b2c_loss`](super::train::b2c_loss) (the encoder, context dropout against the empty
//! prompt's context, the U-Net conditioned on the context, the diffusion MSE plus W × the
//! CLIP alignment term) with the same dropout masks, differentiated in one backward pass that
//! writes each gradient once into buffers the tape keeps between steps.

use super::train::{BatchInputs, StepLoss};
use crate::error::Result;
use brainrecon_brain::b2c::BrainToContextEncoder;
use brainrecon_brain::b2c_tape::encoder_forward_on_tape;
use brainrecon_diffusion::scheduler::NoiseSchedule;
use brainrecon_diffusion::unet::UNet2DConditionModel;
use brainrecon_diffusion::unet_tape::unet_forward_on_tape;
use brainrecon_nn::tape::Tape;
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

/// One training step's losses and gradients, from [`b2c_step_on_tape`].
#[derive(Debug)]
pub struct TapeStep {
    /// The losses: `total` is the tape's f32 value of diffusion + W × clip, `diffusion` the
    /// MSE (summed in f64), `clip` the unweighted alignment term (f64; 0 when W is 0).
    pub loss: StepLoss,
    /// The gradient of every encoder tensor and of every U-Net tensor `trainable` selects,
    /// keyed by the models' tensors (for `clip_grad_norm` and `AdamW::step`).
    pub grads: GradStore,
}

/// A tensor's values, row-major.
fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// Records B2C's loss on `tape` (cleared first) and back-propagates it. Inputs as
/// [`b2c_loss`](super::train::b2c_loss): the noisy latents and the objective's target are
/// computed by `schedule` as there and enter as constants; the context-dropout weights `[B,
/// 1, 1]` and the empty context `[1, T, D]` blend per sample; dropout masks come from `rng`
/// in the candle path's order. `trainable(name)` selects the U-Net tensors (diffusers' names)
/// that get gradients; every encoder tensor does. Errors: inputs whose shapes do not pair
/// with the models, or a U-Net configuration the tape does not cover.
#[allow(clippy::too_many_arguments)]
pub fn b2c_step_on_tape(
    encoder: &BrainToContextEncoder,
    unet: &UNet2DConditionModel,
    schedule: &NoiseSchedule,
    inputs: &BatchInputs,
    clip_weight: f64,
    rng: Option<&mut ChaCha8Rng>,
    trainable: &dyn Fn(&str) -> bool,
    tape: &mut Tape,
) -> Result<TapeStep> {
    tape.clear();
    let encoded = encoder_forward_on_tape(encoder, tape, inputs.betas, rng)?;
    let context = encoded.context;
    let used = match inputs.context_dropout {
        Some((keep, empty)) => tape.blend_rows(context, &values(keep)?, &values(empty)?)?,
        None => context,
    };
    let noisy = schedule.add_noise(inputs.latents, inputs.noise, inputs.timesteps)?;
    let sample = tape.input(noisy.dims(), &values(&noisy)?)?;
    let timesteps: Vec<f32> = inputs.timesteps.iter().map(|&t| t as f32).collect();
    let predicted = unet_forward_on_tape(unet, tape, sample, &timesteps, used, trainable)?;
    let target = schedule.training_target(inputs.latents, inputs.noise, inputs.timesteps)?;
    let target = tape.input(target.dims(), &values(&target)?)?;
    let diffusion = tape.mse(predicted.output, target)?;
    let (total, clip) = if clip_weight > 0.0 {
        let true_context = values(inputs.true_context)?;
        let (aligned, term) = tape.alignment_loss(context, &true_context, clip_weight)?;
        (tape.add(diffusion, aligned)?, term)
    } else {
        (diffusion, 0.0)
    };
    tape.backward(total)?;
    let mut params = encoded.params;
    params.extend(predicted.tensor_nodes());
    let loss = StepLoss {
        total: tape.value(total)[0] as f64,
        diffusion: tape.value(diffusion)[0] as f64,
        clip,
    };
    Ok(TapeStep {
        loss,
        grads: tape.grad_store(&params)?,
    })
}
