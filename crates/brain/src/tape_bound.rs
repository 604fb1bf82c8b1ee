//! Binding an encoder's candle parameters on the project's tape ([`brainrecon_nn::tape`]),
//! shared by every encoder that trains on it (window, B2C, NICE, ATM).

use brainrecon_nn::layers::{LayerNorm, Linear};
use brainrecon_nn::tape::{NodeId, Tape};
use brainrecon_nn::{ModelError, Result};
use candle_core::Tensor;

/// An encoder's parameters on a tape: each tensor beside its node (the tensor is the trainable
/// variable itself, so the gradients reach the optimiser under its key).
pub(crate) struct Bound {
    /// The encoder's name in errors ("window encoder", "EEG encoder", …).
    model: &'static str,
    pub(crate) params: Vec<(Tensor, NodeId)>,
}

impl Bound {
    /// No parameters bound yet; `model` names the encoder in errors.
    pub(crate) fn new(model: &'static str) -> Self {
        Bound {
            model,
            params: Vec::new(),
        }
    }

    /// `t` as a parameter node (its gradient is kept).
    pub(crate) fn leaf(&mut self, tape: &mut Tape, t: &Tensor) -> Result<NodeId> {
        let id = tape.parameter_of(t)?;
        self.params.push((t.clone(), id));
        Ok(id)
    }

    /// A leaf seen as `shape` on the tape (a kernel [O, I, 1, 1] as the matrix [O, I]).
    pub(crate) fn leaf_as(
        &mut self,
        tape: &mut Tape,
        t: &Tensor,
        shape: &[usize],
    ) -> Result<NodeId> {
        let id = self.leaf(tape, t)?;
        tape.reshape(id, shape)?;
        Ok(id)
    }

    /// `layer` on `x` [.., in] with its weight (and bias) bound.
    pub(crate) fn linear(&mut self, tape: &mut Tape, layer: &Linear, x: NodeId) -> Result<NodeId> {
        let w = self.leaf(tape, &layer.weight)?;
        let b = match &layer.bias {
            Some(b) => Some(self.leaf(tape, b)?),
            None => None,
        };
        tape.linear(x, w, b)
    }

    /// `norm` on `x`'s rows; errors when the norm has no affine parameters.
    pub(crate) fn layer_norm(
        &mut self,
        tape: &mut Tape,
        norm: &LayerNorm,
        x: NodeId,
    ) -> Result<NodeId> {
        let (Some(w), Some(b)) = (&norm.weight, &norm.bias) else {
            return Err(ModelError::Invalid(format!(
                "{} on the tape: its layer norms are affine",
                self.model
            )));
        };
        let (w, b) = (self.leaf(tape, w)?, self.leaf(tape, b)?);
        tape.layer_norm(x, w, b, norm.eps)
    }
}
