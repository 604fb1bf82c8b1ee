//! torchvision's `resnet50` up to `avgpool` (2048 features), names as torchvision's
//! (`conv1.weight`, `layer3.4.bn2.running_var`, `layer1.0.downsample.0.weight`, …): the SwAV
//! weights of the metric suite are stored under these names. Batch norm eps 1e-5; the stride of
//! a bottleneck is on its 3×3 convolution (ResNet v1.5).

use brainrecon_nn::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::ops::{global_avg_pool, max_pool, BatchNorm, Conv, ConvSpec};

const EPS: f64 = 1e-5;

/// Blocks per stage and their width (the bottleneck's middle channels).
const LAYERS: [(usize, usize); 4] = [(3, 64), (4, 128), (6, 256), (3, 512)];

#[derive(Debug, Clone)]
struct Bottleneck {
    convs: [(Conv, BatchNorm); 3],
    downsample: Option<(Conv, BatchNorm)>,
}

fn conv_bn(vb: &VarBuilder, conv: &str, bn: &str, spec: ConvSpec) -> Result<(Conv, BatchNorm)> {
    Ok((
        Conv::new(vb.pp(conv), spec)?,
        BatchNorm::new(vb.pp(bn), spec.out_channels, EPS)?,
    ))
}

impl Bottleneck {
    fn new(vb: VarBuilder, c_in: usize, width: usize, stride: usize) -> Result<Self> {
        let c_out = width * 4;
        let downsample = match stride != 1 || c_in != c_out {
            true => Some(conv_bn(
                &vb,
                "downsample.0",
                "downsample.1",
                ConvSpec::square(c_in, c_out, 1, stride, 0),
            )?),
            false => None,
        };
        Ok(Bottleneck {
            convs: [
                conv_bn(&vb, "conv1", "bn1", ConvSpec::square(c_in, width, 1, 1, 0))?,
                conv_bn(
                    &vb,
                    "conv2",
                    "bn2",
                    ConvSpec::square(width, width, 3, stride, 1),
                )?,
                conv_bn(&vb, "conv3", "bn3", ConvSpec::square(width, c_out, 1, 1, 0))?,
            ],
            downsample,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = x.clone();
        for (i, (conv, bn)) in self.convs.iter().enumerate() {
            y = bn.forward(&conv.forward(&y)?)?;
            if i < 2 {
                y = y.relu()?;
            }
        }
        let identity = match &self.downsample {
            Some((conv, bn)) => bn.forward(&conv.forward(x)?)?,
            None => x.clone(),
        };
        Ok((y + identity)?.relu()?)
    }
}

/// torchvision's `resnet50` up to `avgpool` (inference); the SwAV network of the metric suite.
#[derive(Debug, Clone)]
pub struct ResNet50 {
    stem: (Conv, BatchNorm),
    blocks: Vec<Bottleneck>,
}

impl ResNet50 {
    /// Reads `conv1`, `bn1` and `layer1` … `layer4` of a torchvision checkpoint (`fc` is not read);
    /// errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let stem = conv_bn(&vb, "conv1", "bn1", ConvSpec::square(3, 64, 7, 2, 3))?;
        let mut blocks = Vec::new();
        let mut c_in = 64;
        for (stage, &(count, width)) in LAYERS.iter().enumerate() {
            let layer = vb.pp(format!("layer{}", stage + 1));
            for i in 0..count {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                blocks.push(Bottleneck::new(
                    layer.pp(i.to_string()),
                    c_in,
                    width,
                    stride,
                )?);
                c_in = width * 4;
            }
        }
        Ok(ResNet50 { stem, blocks })
    }

    /// `avgpool` of ImageNet-normalised images [B, 3, H, W]: [B, 2048].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (conv, bn) = &self.stem;
        let mut x = max_pool(&bn.forward(&conv.forward(x)?)?.relu()?, 3, 2, 1)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        global_avg_pool(&x)
    }
}
