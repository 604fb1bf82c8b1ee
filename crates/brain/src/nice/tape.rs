//! NICE's training step on the project's own tape ([`brainrecon_nn::tape`]): the same
//! function as [`NiceEegEncoder::forward`] in training mode and [`nice_loss`](super::nice_loss),
//! the same dropout masks from the same stream, the batch norms' running statistics moved as
//! the candle path moves them, and every gradient in one backward pass.

use super::NiceEegEncoder;
pub(crate) use crate::tape_bound::Bound;
use brainrecon_nn::layers::BatchNorm;
use brainrecon_nn::tape::{ClipLogits, NodeId, Tape};
use brainrecon_nn::{ModelError, Result};
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

impl Bound {
    /// Batch norm with batch statistics and ELU(1) on `x` [B, C, *]; moves `norm`'s running
    /// statistics as [`BatchNorm::forward_train`] does.
    fn batch_norm_elu(&mut self, tape: &mut Tape, norm: &BatchNorm, x: NodeId) -> Result<NodeId> {
        let (w, b) = (self.leaf(tape, &norm.weight)?, self.leaf(tape, &norm.bias)?);
        let shape = tape.shape(x).to_vec();
        let per_channel = shape[0] * shape[2..].iter().product::<usize>();
        let (y, mean, var) = tape.batch_norm(x, w, b, norm.eps, Some(1.0))?;
        norm.update_running(&mean, &var, per_channel)?;
        Ok(y)
    }
}

/// One training step's loss and gradients.
#[derive(Debug)]
pub struct TapeStep {
    /// The contrastive loss.
    pub loss: f64,
    /// The gradient of every parameter tensor the step reached, keyed by the encoder's
    /// variables (for `AdamW::step`).
    pub grads: GradStore,
}

impl NiceEegEncoder {
    /// NICE's convolutions and projection in training mode on `tape`, from `x` [B, C, T]
    /// (a node: the EEG, or ATM's tokens) to the embeddings [B, D]; dropout masks from
    /// `rng` in the candle path's order. Moves the batch norms' running statistics.
    pub(crate) fn forward_on_tape(
        &self,
        tape: &mut Tape,
        bound: &mut Bound,
        x: NodeId,
        rng: &mut ChaCha8Rng,
    ) -> Result<NodeId> {
        let c = &self.config;
        let [b, channels, times] = tape.shape(x)[..] else {
            return Err(ModelError::Invalid(format!(
                "NICE on the tape: input {:?}, expected [B, C, T]",
                tape.shape(x)
            )));
        };
        if (channels, times) != (c.channels, c.times) {
            return Err(ModelError::InvalidInput {
                name: "EEG trials",
                msg: format!(
                    "shape [{b}, {channels}, {times}], expected [B, {}, {}]",
                    c.channels, c.times
                ),
            });
        }
        let (f, k) = (c.filters, c.temporal_kernel);
        let span = self.pool_box.dim(1)?;
        // the temporal kernel convolved with the pool's box: [F, K] · box [K, span]
        let temporal = bound.leaf_as(tape, &self.temporal_weight, &[f, k])?;
        let box_t = self.pool_box.t()?.contiguous()?;
        let box_t = tape.input(&[span, k], &box_t.flatten_all()?.to_vec1::<f32>()?)?;
        let kernel = tape.linear(temporal, box_t, None)?;
        let bias = bound.leaf(tape, &self.temporal_bias)?;
        let h = tape.temporal_conv(x, kernel, Some(bias), c.pool_stride)?; // [B, F, C, T']
        let h = bound.batch_norm_elu(tape, &self.norm_temporal, h)?;
        let t = tape.shape(h)[3];
        tape.reshape(h, &[b, f * channels, t])?;
        let spatial = bound.leaf_as(tape, &self.spatial_weight, &[f, f * channels])?;
        let bias = bound.leaf(tape, &self.spatial_bias)?;
        let h = tape.channel_mix(h, spatial, Some(bias))?; // [B, F, T']
        let h = bound.batch_norm_elu(tape, &self.norm_spatial, h)?;
        let h = tape.dropout(h, c.dropout, rng);
        // the 1×1 projection on [B, T', F] rows is the flattened b e h w → b (h w) e
        let h = tape.swap_axes(h, [b, f, t, 1])?;
        tape.reshape(h, &[b, t, f])?;
        let projection = bound.leaf_as(tape, &self.projection_weight, &[c.emb_size, f])?;
        let bias = bound.leaf(tape, &self.projection_bias)?;
        let h = tape.linear(h, projection, Some(bias))?;
        tape.reshape(h, &[b, t * c.emb_size])?;
        let h = bound.linear(tape, &self.proj_in, h)?;
        let r = tape.gelu(h);
        let r = bound.linear(tape, &self.proj_residual, r)?;
        let r = tape.dropout(r, c.drop_proj, rng);
        let sum = tape.add(h, r)?;
        bound.layer_norm(tape, &self.proj_norm, sum)
    }

    /// One training step on `tape` (cleared first): `eeg` [B, C, T] → embeddings → NICE's
    /// loss against `images` [B, D] → every parameter's gradient. Dropout masks come from
    /// `rng` in the order [`NiceEegEncoder::forward`] draws them, and the batch norms' running
    /// statistics move as there. Errors: shapes that do not fit the encoder.
    pub fn train_step_on_tape(
        &self,
        tape: &mut Tape,
        eeg: &Tensor,
        images: &Tensor,
        rng: &mut ChaCha8Rng,
    ) -> Result<TapeStep> {
        tape.clear();
        let mut bound = Bound::new("EEG encoder");
        let x = tape.input(eeg.dims(), &eeg.flatten_all()?.to_vec1::<f32>()?)?;
        let embedded = self.forward_on_tape(tape, &mut bound, x, rng)?;
        contrastive_step(
            tape,
            bound,
            embedded,
            images,
            &self.logit_scale,
            ClipLogits::UnitRowsExpScale,
        )
    }
}

/// The end of NICE's and ATM's steps: the contrastive loss of `embedded` [B, D] against
/// `images` [B, D] with the learnable `logit_scale` bound as a parameter, its backward, and
/// every bound parameter's gradient.
pub(crate) fn contrastive_step(
    tape: &mut Tape,
    mut bound: Bound,
    embedded: NodeId,
    images: &Tensor,
    logit_scale: &Tensor,
    logits: ClipLogits,
) -> Result<TapeStep> {
    let scale = bound.leaf(tape, logit_scale)?;
    let images = images.flatten_all()?.to_vec1::<f32>()?;
    let (loss, value) = tape.clip_loss(embedded, &images, scale, logits)?;
    tape.backward(loss)?;
    Ok(TapeStep {
        loss: value,
        grads: tape.grad_store(&bound.params)?,
    })
}
