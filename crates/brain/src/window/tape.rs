//! The window encoder's training step on the project's own tape ([`brainrecon_nn::tape`]):
//! the same function as [`FmriWindowEncoder::forward`] and [`encoder_loss`](super::encoder_loss),
//! the same dropout masks from the same stream, the gradients in one backward pass that
//! writes each gradient once into buffers the tape keeps between steps.

use super::FmriWindowEncoder;
pub(crate) use crate::tape_bound::Bound;
use brainrecon_nn::tape::{EncoderLossParts, NodeId, Tape};
use brainrecon_nn::{ModelError, Result};
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

/// Which engine differentiates a training step (shared by every trainer, in
/// [`brainrecon_nn::tape`]).
pub use brainrecon_nn::tape::TrainEngine;

/// One training step's loss and gradients, from [`train_step_on_tape`].
#[derive(Debug)]
pub struct TapeStep {
    /// The loss and its terms.
    pub loss: EncoderLossParts,
    /// The gradient of every parameter tensor, keyed by the encoder's tensors (for
    /// `clip_grad_norm` and `AdamW::step`).
    pub grads: GradStore,
}

/// Records the encoder's forward on `tape` (cleared first): windows [B, K·V] → the context
/// node [B, T, D], with dropout masks drawn from `rng` in the order the candle path draws
/// them (`None`: no dropout). Returns the context and each parameter tensor's node. Errors: a
/// window width that is not K·V.
pub fn forward_on_tape(
    encoder: &FmriWindowEncoder,
    tape: &mut Tape,
    windows: &Tensor,
    mut rng: Option<&mut ChaCha8Rng>,
) -> Result<(NodeId, Vec<(Tensor, NodeId)>)> {
    let c = &encoder.config;
    let (b, width) = windows.dims2()?;
    if width != c.window * c.voxels {
        return Err(ModelError::Invalid(format!(
            "fMRI window encoder: windows have {width} columns, the encoder expects {} \
             ({} frames of {} voxels)",
            c.window * c.voxels,
            c.window,
            c.voxels
        )));
    }
    let (k, n, d, p) = (c.window, c.num_patches(), c.hidden_size, c.patch_size);
    tape.clear();
    let mut bound = Bound::new("window encoder");
    // each frame's voxels, zero-padded to N·P, as B·K·N patches of P
    let flat = windows.flatten_all()?.to_vec1::<f32>()?;
    let mut patches = vec![0f32; b * k * n * p];
    for (frame, dst) in flat
        .chunks_exact(c.voxels)
        .zip(patches.chunks_exact_mut(n * p))
    {
        dst[..c.voxels].copy_from_slice(frame);
    }
    let x = tape.input(&[b * k, n, p], &patches)?;
    let x = bound.linear(tape, &encoder.patch_embed, x)?;
    let position = bound.leaf(tape, &encoder.position_embedding)?;
    let x = tape.add_table(x, position, [b * k, n, 1, d])?;
    let frame = bound.leaf(tape, &encoder.frame_embedding)?;
    let mut x = tape.add_table(x, frame, [b, k, n, d])?;
    x = dropped(tape, x, c.dropout, &mut rng);
    for (spatial, temporal) in encoder.spatial_blocks.iter().zip(&encoder.temporal_blocks) {
        tape.reshape(x, &[b * k, n, d])?;
        let per_frame = block(tape, &mut bound, spatial, x, &mut rng)?;
        let per_patch = tape.swap_axes(per_frame, [b, k, n, d])?;
        tape.reshape(per_patch, &[b * n, k, d])?;
        let mixed = block(tape, &mut bound, temporal, per_patch, &mut rng)?;
        x = tape.swap_axes(mixed, [b, n, k, d])?;
    }
    let pooled = tape.mean_axis(x, [b, k, n * d])?;
    tape.reshape(pooled, &[b, n, d])?;
    let (w, bias) = match &encoder.token_map.bias {
        Some(bias) => (
            bound.leaf(tape, &encoder.token_map.weight)?,
            bound.leaf(tape, bias)?,
        ),
        None => {
            return Err(ModelError::Invalid(
                "window encoder on the tape: token_map has a bias".into(),
            ))
        }
    };
    let tokens = tape.mix_rows(pooled, w, bias)?;
    let normed = bound.layer_norm(tape, &encoder.norm_out, tokens)?;
    let context = bound.linear(tape, &encoder.proj_out, normed)?;
    Ok((context, bound.params))
}

/// Dropout with probability `p` when training (`rng` given), else `x`.
pub(crate) fn dropped(
    tape: &mut Tape,
    x: NodeId,
    p: f64,
    rng: &mut Option<&mut ChaCha8Rng>,
) -> NodeId {
    match rng {
        Some(r) => tape.dropout(x, p, r),
        None => x,
    }
}

/// A pre-norm block (B2C's [`EncoderBlock`](crate::b2c::EncoderBlock)) on `x` [B, L, D].
pub(crate) fn block(
    tape: &mut Tape,
    bound: &mut Bound,
    blk: &crate::b2c::EncoderBlock,
    x: NodeId,
    rng: &mut Option<&mut ChaCha8Rng>,
) -> Result<NodeId> {
    let h = bound.layer_norm(tape, &blk.norm1, x)?;
    let q = bound.linear(tape, &blk.to_q, h)?;
    let k = bound.linear(tape, &blk.to_k, h)?;
    let v = bound.linear(tape, &blk.to_v, h)?;
    let attended = tape.attention(q, k, v, blk.heads)?;
    let out = bound.linear(tape, &blk.to_out, attended)?;
    let out = dropped(tape, out, blk.dropout, rng);
    let x = tape.add(out, x)?;
    let h = bound.layer_norm(tape, &blk.norm3, x)?;
    let h = bound.linear(tape, &blk.ff_in, h)?;
    let h = tape.gelu(h);
    let h = dropped(tape, h, blk.dropout, rng);
    let h = bound.linear(tape, &blk.ff_out, h)?;
    tape.add(h, x)
}

/// One training step's forward, loss ([`encoder_loss`](super::encoder_loss): contrastive +
/// `align_weight` × alignment against `target` [B, T, D]) and backward on `tape`. Errors as
/// [`forward_on_tape`], and when `target` does not pair with the context.
pub fn train_step_on_tape(
    encoder: &FmriWindowEncoder,
    tape: &mut Tape,
    windows: &Tensor,
    target: &Tensor,
    rng: Option<&mut ChaCha8Rng>,
    temperature: f64,
    align_weight: f64,
) -> Result<TapeStep> {
    let (context, params) = forward_on_tape(encoder, tape, windows, rng)?;
    let target = target.flatten_all()?.to_vec1::<f32>()?;
    let (loss, parts) =
        tape.contrastive_alignment_loss(context, &target, temperature, align_weight)?;
    tape.backward(loss)?;
    Ok(TapeStep {
        loss: parts,
        grads: tape.grad_store(&params)?,
    })
}
