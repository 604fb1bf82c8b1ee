//! torchvision's `inception_v3` up to `avgpool` (2048 features), with `transform_input=True`
//! (what torchvision sets whenever pretrained weights are loaded). Module names follow
//! torchvision (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_mean`, …); the
//! auxiliary classifier and `fc` are not read.

use brainrecon_nn::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::ops::{avg_pool, global_avg_pool, max_pool, BatchNorm, Conv, ConvSpec};

/// Batch-norm epsilon of every `BasicConv2d`.
const EPS: f64 = 0.001;

/// `BasicConv2d`: convolution without bias, batch norm, ReLU.
#[derive(Debug, Clone)]
struct Basic {
    conv: Conv,
    bn: BatchNorm,
}

impl Basic {
    fn new(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        kernel: (usize, usize),
        stride: usize,
        padding: (usize, usize),
    ) -> Result<Self> {
        let spec = ConvSpec {
            in_channels: c_in,
            out_channels: c_out,
            kernel,
            stride: (stride, stride),
            padding,
            bias: false,
            depthwise: false,
        };
        Ok(Basic {
            conv: Conv::new(vb.pp("conv"), spec)?,
            bn: BatchNorm::new(vb.pp("bn"), c_out, EPS)?,
        })
    }

    /// A square `k`×`k` convolution.
    fn square(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        Self::new(vb, c_in, c_out, (k, k), stride, (padding, padding))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.bn.forward(&self.conv.forward(x)?)?.relu()?)
    }
}

/// Runs a chain of `BasicConv2d`s.
fn chain(layers: &[Basic], x: &Tensor) -> Result<Tensor> {
    let mut x = x.clone();
    for layer in layers {
        x = layer.forward(&x)?;
    }
    Ok(x)
}

fn cat(parts: &[Tensor]) -> Result<Tensor> {
    Ok(Tensor::cat(parts, 1)?)
}

/// `InceptionA`: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg-pool→1×1.
#[derive(Debug, Clone)]
struct BlockA {
    branch1x1: Basic,
    branch5x5: Vec<Basic>,
    branch3x3dbl: Vec<Basic>,
    branch_pool: Basic,
}

impl BlockA {
    fn new(vb: VarBuilder, c_in: usize, pool_features: usize) -> Result<Self> {
        Ok(BlockA {
            branch1x1: Basic::square(vb.pp("branch1x1"), c_in, 64, 1, 1, 0)?,
            branch5x5: vec![
                Basic::square(vb.pp("branch5x5_1"), c_in, 48, 1, 1, 0)?,
                Basic::square(vb.pp("branch5x5_2"), 48, 64, 5, 1, 2)?,
            ],
            branch3x3dbl: vec![
                Basic::square(vb.pp("branch3x3dbl_1"), c_in, 64, 1, 1, 0)?,
                Basic::square(vb.pp("branch3x3dbl_2"), 64, 96, 3, 1, 1)?,
                Basic::square(vb.pp("branch3x3dbl_3"), 96, 96, 3, 1, 1)?,
            ],
            branch_pool: Basic::square(vb.pp("branch_pool"), c_in, pool_features, 1, 1, 0)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        cat(&[
            self.branch1x1.forward(x)?,
            chain(&self.branch5x5, x)?,
            chain(&self.branch3x3dbl, x)?,
            self.branch_pool.forward(&avg_pool(x, 3, 1, 1)?)?,
        ])
    }
}

/// `InceptionB`: 3×3 stride 2 | 1×1→3×3→3×3 stride 2 | max-pool.
#[derive(Debug, Clone)]
struct BlockB {
    branch3x3: Basic,
    branch3x3dbl: Vec<Basic>,
}

impl BlockB {
    fn new(vb: VarBuilder, c_in: usize) -> Result<Self> {
        Ok(BlockB {
            branch3x3: Basic::square(vb.pp("branch3x3"), c_in, 384, 3, 2, 0)?,
            branch3x3dbl: vec![
                Basic::square(vb.pp("branch3x3dbl_1"), c_in, 64, 1, 1, 0)?,
                Basic::square(vb.pp("branch3x3dbl_2"), 64, 96, 3, 1, 1)?,
                Basic::square(vb.pp("branch3x3dbl_3"), 96, 96, 3, 2, 0)?,
            ],
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        cat(&[
            self.branch3x3.forward(x)?,
            chain(&self.branch3x3dbl, x)?,
            max_pool(x, 3, 2, 0)?,
        ])
    }
}

/// `InceptionC`: factorised 7×7 convolutions (1×7 and 7×1).
#[derive(Debug, Clone)]
struct BlockC {
    branch1x1: Basic,
    branch7x7: Vec<Basic>,
    branch7x7dbl: Vec<Basic>,
    branch_pool: Basic,
}

impl BlockC {
    fn new(vb: VarBuilder, c_in: usize, c7: usize) -> Result<Self> {
        let row = |vb: VarBuilder, a: usize, b: usize| Basic::new(vb, a, b, (1, 7), 1, (0, 3));
        let col = |vb: VarBuilder, a: usize, b: usize| Basic::new(vb, a, b, (7, 1), 1, (3, 0));
        Ok(BlockC {
            branch1x1: Basic::square(vb.pp("branch1x1"), c_in, 192, 1, 1, 0)?,
            branch7x7: vec![
                Basic::square(vb.pp("branch7x7_1"), c_in, c7, 1, 1, 0)?,
                row(vb.pp("branch7x7_2"), c7, c7)?,
                col(vb.pp("branch7x7_3"), c7, 192)?,
            ],
            branch7x7dbl: vec![
                Basic::square(vb.pp("branch7x7dbl_1"), c_in, c7, 1, 1, 0)?,
                col(vb.pp("branch7x7dbl_2"), c7, c7)?,
                row(vb.pp("branch7x7dbl_3"), c7, c7)?,
                col(vb.pp("branch7x7dbl_4"), c7, c7)?,
                row(vb.pp("branch7x7dbl_5"), c7, 192)?,
            ],
            branch_pool: Basic::square(vb.pp("branch_pool"), c_in, 192, 1, 1, 0)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        cat(&[
            self.branch1x1.forward(x)?,
            chain(&self.branch7x7, x)?,
            chain(&self.branch7x7dbl, x)?,
            self.branch_pool.forward(&avg_pool(x, 3, 1, 1)?)?,
        ])
    }
}

/// `InceptionD`: 1×1→3×3 stride 2 | 1×1→1×7→7×1→3×3 stride 2 | max-pool.
#[derive(Debug, Clone)]
struct BlockD {
    branch3x3: Vec<Basic>,
    branch7x7x3: Vec<Basic>,
}

impl BlockD {
    fn new(vb: VarBuilder, c_in: usize) -> Result<Self> {
        Ok(BlockD {
            branch3x3: vec![
                Basic::square(vb.pp("branch3x3_1"), c_in, 192, 1, 1, 0)?,
                Basic::square(vb.pp("branch3x3_2"), 192, 320, 3, 2, 0)?,
            ],
            branch7x7x3: vec![
                Basic::square(vb.pp("branch7x7x3_1"), c_in, 192, 1, 1, 0)?,
                Basic::new(vb.pp("branch7x7x3_2"), 192, 192, (1, 7), 1, (0, 3))?,
                Basic::new(vb.pp("branch7x7x3_3"), 192, 192, (7, 1), 1, (3, 0))?,
                Basic::square(vb.pp("branch7x7x3_4"), 192, 192, 3, 2, 0)?,
            ],
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        cat(&[
            chain(&self.branch3x3, x)?,
            chain(&self.branch7x7x3, x)?,
            max_pool(x, 3, 2, 0)?,
        ])
    }
}

/// `InceptionE`: 1×1 | 1×1→(1×3 ‖ 3×1) | 1×1→3×3→(1×3 ‖ 3×1) | avg-pool→1×1.
#[derive(Debug, Clone)]
struct BlockE {
    branch1x1: Basic,
    branch3x3_1: Basic,
    branch3x3_2: [Basic; 2],
    branch3x3dbl: Vec<Basic>,
    branch3x3dbl_3: [Basic; 2],
    branch_pool: Basic,
}

impl BlockE {
    fn new(vb: VarBuilder, c_in: usize) -> Result<Self> {
        let split = |vb: VarBuilder, a: &str, b: &str| -> Result<[Basic; 2]> {
            Ok([
                Basic::new(vb.pp(a), 384, 384, (1, 3), 1, (0, 1))?,
                Basic::new(vb.pp(b), 384, 384, (3, 1), 1, (1, 0))?,
            ])
        };
        Ok(BlockE {
            branch1x1: Basic::square(vb.pp("branch1x1"), c_in, 320, 1, 1, 0)?,
            branch3x3_1: Basic::square(vb.pp("branch3x3_1"), c_in, 384, 1, 1, 0)?,
            branch3x3_2: split(vb.clone(), "branch3x3_2a", "branch3x3_2b")?,
            branch3x3dbl: vec![
                Basic::square(vb.pp("branch3x3dbl_1"), c_in, 448, 1, 1, 0)?,
                Basic::square(vb.pp("branch3x3dbl_2"), 448, 384, 3, 1, 1)?,
            ],
            branch3x3dbl_3: split(vb.clone(), "branch3x3dbl_3a", "branch3x3dbl_3b")?,
            branch_pool: Basic::square(vb.pp("branch_pool"), c_in, 192, 1, 1, 0)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let both = |pair: &[Basic; 2], x: &Tensor| -> Result<Tensor> {
            cat(&[pair[0].forward(x)?, pair[1].forward(x)?])
        };
        let b3 = self.branch3x3_1.forward(x)?;
        let bd = chain(&self.branch3x3dbl, x)?;
        cat(&[
            self.branch1x1.forward(x)?,
            both(&self.branch3x3_2, &b3)?,
            both(&self.branch3x3dbl_3, &bd)?,
            self.branch_pool.forward(&avg_pool(x, 3, 1, 1)?)?,
        ])
    }
}

/// torchvision's `inception_v3` up to `avgpool`, with `transform_input` (inference).
#[derive(Debug, Clone)]
pub struct InceptionV3 {
    stem: Vec<Basic>,
    stem2: Vec<Basic>,
    mixed_5: Vec<BlockA>,
    mixed_6a: BlockB,
    mixed_6: Vec<BlockC>,
    mixed_7a: BlockD,
    mixed_7: Vec<BlockE>,
}

impl InceptionV3 {
    /// Reads the torchvision module names (`Conv2d_1a_3x3` … `Mixed_7c`; `AuxLogits` and `fc` are
    /// not read); errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(InceptionV3 {
            stem: vec![
                Basic::square(vb.pp("Conv2d_1a_3x3"), 3, 32, 3, 2, 0)?,
                Basic::square(vb.pp("Conv2d_2a_3x3"), 32, 32, 3, 1, 0)?,
                Basic::square(vb.pp("Conv2d_2b_3x3"), 32, 64, 3, 1, 1)?,
            ],
            stem2: vec![
                Basic::square(vb.pp("Conv2d_3b_1x1"), 64, 80, 1, 1, 0)?,
                Basic::square(vb.pp("Conv2d_4a_3x3"), 80, 192, 3, 1, 0)?,
            ],
            mixed_5: vec![
                BlockA::new(vb.pp("Mixed_5b"), 192, 32)?,
                BlockA::new(vb.pp("Mixed_5c"), 256, 64)?,
                BlockA::new(vb.pp("Mixed_5d"), 288, 64)?,
            ],
            mixed_6a: BlockB::new(vb.pp("Mixed_6a"), 288)?,
            mixed_6: vec![
                BlockC::new(vb.pp("Mixed_6b"), 768, 128)?,
                BlockC::new(vb.pp("Mixed_6c"), 768, 160)?,
                BlockC::new(vb.pp("Mixed_6d"), 768, 160)?,
                BlockC::new(vb.pp("Mixed_6e"), 768, 192)?,
            ],
            mixed_7a: BlockD::new(vb.pp("Mixed_7a"), 768)?,
            mixed_7: vec![
                BlockE::new(vb.pp("Mixed_7b"), 1280)?,
                BlockE::new(vb.pp("Mixed_7c"), 2048)?,
            ],
        })
    }

    /// torchvision's `_transform_input`: ImageNet-normalised input re-normalised to the
    /// (x − 0.5) / 0.5 the original weights were trained with.
    fn transform_input(x: &Tensor) -> Result<Tensor> {
        const MEAN: [f64; 3] = [0.485, 0.456, 0.406];
        const STD: [f64; 3] = [0.229, 0.224, 0.225];
        let channels = (0..3)
            .map(|c| -> Result<Tensor> {
                Ok(((x.narrow(1, c, 1)? * (STD[c] / 0.5))? + (MEAN[c] - 0.5) / 0.5)?)
            })
            .collect::<Result<Vec<_>>>()?;
        cat(&channels)
    }

    /// `avgpool` of ImageNet-normalised images [B, 3, H, W]: [B, 2048].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = Self::transform_input(x)?;
        let x = max_pool(&chain(&self.stem, &x)?, 3, 2, 0)?;
        let mut x = max_pool(&chain(&self.stem2, &x)?, 3, 2, 0)?;
        for block in &self.mixed_5 {
            x = block.forward(&x)?;
        }
        x = self.mixed_6a.forward(&x)?;
        for block in &self.mixed_6 {
            x = block.forward(&x)?;
        }
        x = self.mixed_7a.forward(&x)?;
        for block in &self.mixed_7 {
            x = block.forward(&x)?;
        }
        global_avg_pool(&x)
    }
}
