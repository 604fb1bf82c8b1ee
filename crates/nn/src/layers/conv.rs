//! `Conv2d` and nearest-neighbour upsampling.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::Result;

/// 2-D convolution, parameters `weight` `[out, in, k, k]` and optional `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// `[out, in, k, k]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Option<Tensor>,
    /// The same stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl Conv2d {
    /// Loads `weight` and `bias` from `vb`.
    pub fn new(
        vb: VarBuilder,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let weight = super::weight(&vb, (out_channels, in_channels, kernel, kernel), "weight")?;
        let bias = Some(super::weight(&vb, out_channels, "bias")?);
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
        })
    }

    /// `x` has shape [B, C_in, H, W].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = crate::conv::conv2d(x, &self.weight, self.padding, self.stride)?;
        Ok(match &self.bias {
            Some(b) => crate::channel::channel_affine(&y, None, Some(b))?,
            None => y,
        })
    }
}

/// Nearest-neighbour 2x upsampling of [B, C, H, W], written with broadcast/reshape so that its
/// backward pass accumulates correctly.
pub fn upsample_nearest_2x(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    Ok(x.reshape((b, c, h, 1, w, 1))?
        .broadcast_as((b, c, h, 2, w, 2))?
        .contiguous()?
        .reshape((b, c, 2 * h, 2 * w))?)
}
