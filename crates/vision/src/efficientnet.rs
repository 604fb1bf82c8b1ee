//! torchvision's `efficientnet_b1` up to `avgpool` (1280 features): the same module tree and
//! names for the IMAGENET1K_V1 and V2 weights (`features.0.0.weight`,
//! `features.2.1.block.3.fc1.bias`, …); batch norm eps 1e-5, torch's symmetric `(k − 1) / 2`
//! padding (not TensorFlow's "same"), SiLU, squeeze-and-excitation on the expanded channels.

use brainrecon_nn::layers::silu;
use brainrecon_nn::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::ops::{global_avg_pool, BatchNorm, Conv, ConvSpec};

const EPS: f64 = 1e-5;

/// B0's stages as torchvision lists them: (expand ratio, kernel, stride, in, out, layers).
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
];

/// B1 scales depth by 1.1 (layers rounded up) and keeps the widths.
const DEPTH: f64 = 1.1;

/// `Conv2dNormActivation`: convolution (no bias), batch norm, optional SiLU.
#[derive(Debug, Clone)]
struct ConvNorm {
    conv: Conv,
    bn: BatchNorm,
    act: bool,
}

impl ConvNorm {
    fn new(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        depthwise: bool,
        act: bool,
    ) -> Result<Self> {
        let mut spec = ConvSpec::square(c_in, c_out, k, stride, (k - 1) / 2);
        spec.depthwise = depthwise;
        Ok(ConvNorm {
            conv: Conv::new(vb.pp("0"), spec)?,
            bn: BatchNorm::new(vb.pp("1"), c_out, EPS)?,
            act,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.bn.forward(&self.conv.forward(x)?)?;
        if self.act {
            silu(&y)
        } else {
            Ok(y)
        }
    }
}

/// `SqueezeExcitation`: `x · sigmoid(fc2(silu(fc1(mean(x)))))`.
#[derive(Debug, Clone)]
struct Squeeze {
    fc1: Conv,
    fc2: Conv,
}

impl Squeeze {
    fn new(vb: VarBuilder, channels: usize, squeezed: usize) -> Result<Self> {
        Ok(Squeeze {
            fc1: Conv::new(
                vb.pp("fc1"),
                ConvSpec::square(channels, squeezed, 1, 1, 0).with_bias(),
            )?,
            fc2: Conv::new(
                vb.pp("fc2"),
                ConvSpec::square(squeezed, channels, 1, 1, 0).with_bias(),
            )?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, _, _) = x.dims4()?;
        let pooled = global_avg_pool(x)?.reshape((b, c, 1, 1))?;
        let scale =
            candle_nn::ops::sigmoid(&self.fc2.forward(&silu(&self.fc1.forward(&pooled)?)?)?)?;
        Ok(x.broadcast_mul(&scale)?)
    }
}

/// `MBConv`: expand (1×1, when the ratio is not 1), depthwise k×k, squeeze-excite, project;
/// residual when the shape is kept (stochastic depth is the identity at inference).
#[derive(Debug, Clone)]
struct MbConv {
    expand: Option<ConvNorm>,
    depthwise: ConvNorm,
    squeeze: Squeeze,
    project: ConvNorm,
    residual: bool,
}

impl MbConv {
    fn new(
        vb: VarBuilder,
        ratio: usize,
        k: usize,
        stride: usize,
        c_in: usize,
        c_out: usize,
    ) -> Result<Self> {
        let block = vb.pp("block");
        let expanded = c_in * ratio;
        let mut index = 0;
        let mut next = || {
            let name = index.to_string();
            index += 1;
            block.pp(name)
        };
        let expand = match expanded != c_in {
            true => Some(ConvNorm::new(next(), c_in, expanded, 1, 1, false, true)?),
            false => None,
        };
        let depthwise = ConvNorm::new(next(), expanded, expanded, k, stride, true, true)?;
        let squeeze = Squeeze::new(next(), expanded, (c_in / 4).max(1))?;
        let project = ConvNorm::new(next(), expanded, c_out, 1, 1, false, false)?;
        Ok(MbConv {
            expand,
            depthwise,
            squeeze,
            project,
            residual: stride == 1 && c_in == c_out,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = match &self.expand {
            Some(e) => e.forward(x)?,
            None => x.clone(),
        };
        y = self.depthwise.forward(&y)?;
        y = self.squeeze.forward(&y)?;
        y = self.project.forward(&y)?;
        if self.residual {
            y = (y + x)?;
        }
        Ok(y)
    }
}

/// torchvision's `efficientnet_b1` up to `avgpool` (inference).
#[derive(Debug, Clone)]
pub struct EfficientNetB1 {
    stem: ConvNorm,
    blocks: Vec<MbConv>,
    head: ConvNorm,
}

impl EfficientNetB1 {
    /// Reads `features.*` of a torchvision checkpoint (the classifier is not read); errors on a
    /// tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let features = vb.pp("features");
        let stem = ConvNorm::new(features.pp("0"), 3, 32, 3, 2, false, true)?;
        let mut blocks = Vec::new();
        for (stage, &(ratio, k, stride, c_in, c_out, layers)) in STAGES.iter().enumerate() {
            let stage_vb = features.pp((stage + 1).to_string());
            let repeats = (layers as f64 * DEPTH).ceil() as usize;
            for i in 0..repeats {
                let (c, s) = if i == 0 { (c_in, stride) } else { (c_out, 1) };
                blocks.push(MbConv::new(
                    stage_vb.pp(i.to_string()),
                    ratio,
                    k,
                    s,
                    c,
                    c_out,
                )?);
            }
        }
        let head = ConvNorm::new(features.pp("8"), 320, 1280, 1, 1, false, true)?;
        Ok(EfficientNetB1 { stem, blocks, head })
    }

    /// `avgpool` of ImageNet-normalised images [B, 3, H, W]: [B, 1280].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.stem.forward(x)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        global_avg_pool(&self.head.forward(&x)?)
    }
}
