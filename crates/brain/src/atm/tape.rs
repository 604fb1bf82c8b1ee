//! ATM's training step on the project's own tape ([`brainrecon_nn::tape`]): the same function
//! as [`AtmEegEncoder::forward`] in training mode with the shared subject token and
//! [`atm_loss`](super::atm_loss) against unit image rows, the same dropout masks from the same
//! stream (the attention weights' included), the batch norms' running statistics moved as the
//! candle path moves them, and every gradient in one backward pass.

use super::{AtmEegEncoder, EncoderLayer};
use crate::nice::tape::{contrastive_step, Bound, TapeStep};
use brainrecon_nn::tape::{ClipLogits, NodeId, Tape};
use brainrecon_nn::{ModelError, Result};
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

impl EncoderLayer {
    /// The post-norm layer on `x` [B, L, d], training (dropout `p` from `rng`).
    fn forward_on_tape(
        &self,
        tape: &mut Tape,
        bound: &mut Bound,
        x: NodeId,
        heads: usize,
        p: f64,
        rng: &mut ChaCha8Rng,
    ) -> Result<NodeId> {
        let q = bound.linear(tape, &self.query, x)?;
        let k = bound.linear(tape, &self.key, x)?;
        let v = bound.linear(tape, &self.value, x)?;
        let attended = tape.attention_dropout(q, k, v, heads, p, Some(rng))?;
        let attended = bound.linear(tape, &self.out, attended)?;
        let attended = tape.dropout(attended, p, rng);
        let x = tape.add(x, attended)?;
        let x = bound.layer_norm(tape, &self.norm1, x)?;
        let [kernel_in, kernel_out] = &self.feed_kernels;
        let y = pointwise(tape, bound, kernel_in, &self.feed_in, x)?;
        let y = tape.gelu(y);
        let y = tape.dropout(y, p, rng);
        let y = pointwise(tape, bound, kernel_out, &self.feed_out, y)?;
        let y = tape.dropout(y, p, rng);
        let x = tape.add(x, y)?;
        bound.layer_norm(tape, &self.norm2, x)
    }
}

/// A 1-wide Conv1d as a linear map on the tape, its kernel [out, in, 1] bound as [out, in].
fn pointwise(
    tape: &mut Tape,
    bound: &mut Bound,
    kernel: &Tensor,
    layer: &brainrecon_nn::layers::Linear,
    x: NodeId,
) -> Result<NodeId> {
    let (out, inp) = layer.weight.dims2()?;
    let w = bound.leaf_as(tape, kernel, &[out, inp])?;
    let b = match &layer.bias {
        Some(b) => Some(bound.leaf(tape, b)?),
        None => None,
    };
    tape.linear(x, w, b)
}

impl AtmEegEncoder {
    /// One training step on `tape` (cleared first): `eeg` [B, C, T] with the shared subject
    /// token → embeddings → ATM's loss against `images` [B, D] made unit rows → every
    /// parameter's gradient. Dropout masks come from `rng` in the order
    /// [`AtmEegEncoder::forward`] draws them, and the batch norms' running statistics move as
    /// there. Errors: shapes that do not fit the encoder.
    pub fn train_step_on_tape(
        &self,
        tape: &mut Tape,
        eeg: &Tensor,
        images: &Tensor,
        rng: &mut ChaCha8Rng,
    ) -> Result<TapeStep> {
        let c = &self.config;
        let (b, channels, times) = eeg.dims3().unwrap_or((0, 0, 0));
        if (channels, times) != (c.channels, c.times) || b == 0 {
            return Err(ModelError::InvalidInput {
                name: "EEG trials",
                msg: format!(
                    "shape {:?}, expected [B, {}, {}] with B > 0",
                    eeg.dims(),
                    c.channels,
                    c.times
                ),
            });
        }
        tape.clear();
        let mut bound = Bound::new("EEG encoder");
        let x = tape.input(eeg.dims(), &eeg.flatten_all()?.to_vec1::<f32>()?)?;
        let x = bound.linear(tape, &self.value_embedding, x)?; // [B, C, d]
        let token = bound.leaf(tape, &self.shared_token)?;
        tape.reshape(token, &[c.d_model])?;
        let mut x = tape.prepend_token(x, token)?; // [B, C + 1, d]
        x = tape.dropout(x, c.dropout, rng);
        for layer in &self.layers {
            x = layer.forward_on_tape(tape, &mut bound, x, c.n_heads, c.dropout, rng)?;
        }
        let x = bound.layer_norm(tape, &self.norm, x)?;
        let x = tape.keep_rows(x, c.channels)?;
        let embedded = self.conv.forward_on_tape(tape, &mut bound, x, rng)?;
        contrastive_step(
            tape,
            bound,
            embedded,
            images,
            self.logit_scale(),
            ClipLogits::RawRowsLinearScale,
        )
    }
}
