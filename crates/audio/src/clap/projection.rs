//! `ClapProjectionLayer`: the heads that map each tower's pooled output into the joint space
//! (`audio_projection`, `text_projection`): `linear2(act(linear1(x)))`.

use brainrecon_language::blip::Activation;
use brainrecon_nn::layers::Linear;
use brainrecon_nn::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// A projection head: two linear layers with an activation between them.
#[derive(Clone, Debug)]
pub struct ClapProjectionLayer {
    /// hidden → projection_dim.
    pub linear1: Linear,
    /// projection_dim → projection_dim.
    pub linear2: Linear,
    /// `projection_hidden_act` (ReLU in every released checkpoint).
    pub activation: Activation,
}

impl ClapProjectionLayer {
    /// Loads `linear1` and `linear2` under `vb`: `hidden` → `projection_dim` → `projection_dim`.
    /// Errors: a weight missing or of the wrong shape.
    pub fn new(
        vb: VarBuilder,
        hidden: usize,
        projection_dim: usize,
        activation: Activation,
    ) -> Result<Self> {
        Ok(ClapProjectionLayer {
            linear1: Linear::new(vb.pp("linear1"), hidden, projection_dim, true)?,
            linear2: Linear::new(vb.pp("linear2"), projection_dim, projection_dim, true)?,
            activation,
        })
    }

    /// [B, hidden] → [B, projection_dim].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.activation.forward(&self.linear1.forward(x)?)?;
        self.linear2.forward(&h)
    }
}
