//! torchvision's `alexnet` up to the last convolution (`features.0` … `features.12`), the part
//! the metric suite reads: `features.4` (the ReLU after the second convolution) and
//! `features.11` (the ReLU after the fifth).

use brainrecon_nn::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::ops::{max_pool, Conv, ConvSpec};

/// `features.{0,3,6,8,10}`: (in, out, kernel, stride, padding).
const CONVS: [(usize, usize, usize, usize, usize, usize); 5] = [
    (0, 3, 64, 11, 4, 2),
    (3, 64, 192, 5, 1, 2),
    (6, 192, 384, 3, 1, 1),
    (8, 384, 256, 3, 1, 1),
    (10, 256, 256, 3, 1, 1),
];

/// The two feature maps of AlexNet the metrics use.
pub struct AlexNetFeatures {
    /// `features.4`: [B, 192, h, w].
    pub features_4: Tensor,
    /// `features.11`: [B, 256, h', w'].
    pub features_11: Tensor,
}

/// torchvision's `alexnet` convolutions `features.0` … `features.12` (inference).
#[derive(Debug, Clone)]
pub struct AlexNet {
    convs: Vec<Conv>,
}

impl AlexNet {
    /// Reads `features.{0,3,6,8,10}.{weight,bias}` (the classifier is not needed).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let features = vb.pp("features");
        let convs = CONVS
            .iter()
            .map(|&(index, c_in, c_out, k, s, p)| {
                Conv::new(
                    features.pp(index.to_string()),
                    ConvSpec::square(c_in, c_out, k, s, p).with_bias(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AlexNet { convs })
    }

    /// `x`: normalised images [B, 3, H, W].
    pub fn forward(&self, x: &Tensor) -> Result<AlexNetFeatures> {
        let relu = |conv: &Conv, x: &Tensor| -> Result<Tensor> { Ok(conv.forward(x)?.relu()?) };
        let x = max_pool(&relu(&self.convs[0], x)?, 3, 2, 0)?;
        let features_4 = relu(&self.convs[1], &x)?;
        let x = max_pool(&features_4, 3, 2, 0)?;
        let x = relu(&self.convs[2], &x)?;
        let x = relu(&self.convs[3], &x)?;
        let features_11 = relu(&self.convs[4], &x)?;
        Ok(AlexNetFeatures {
            features_4,
            features_11,
        })
    }
}
