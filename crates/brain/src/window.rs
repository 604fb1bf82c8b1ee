//! The fMRI window encoder of the video route, after MinD-Video (Chen, Qing & Zhou 2023): a
//! window of K consecutive fMRI frames becomes the cross-attention context of a (motion)
//! U-Net, with attention over the voxel patches of each frame (spatial) and over the frames of
//! each patch (temporal).
//!
//! ```text
//! window [B, K·V]               frames side by side (video prepare's X: block k is TR t+lag+k)
//!  → [B, K, N, P]               each frame's voxels cut into N patches of P (zeros pad the last)
//!  patch_embed                  Linear P → D, shared by patches and frames → [B, K, N, D]
//!  + position_embedding.weight  [N, D]   which patch
//!  + frame_embedding.weight     [K, D]   which frame of the window
//!    dropout
//!  spatial_blocks.i             self-attention over the N patches of each frame  [B·K, N, D]
//!  temporal_blocks.i            self-attention over the K frames of each patch   [B·N, K, D]
//!  mean over the K frames       [B, N, D]
//!  token_map                    Linear N → T over the token axis → [B, T, D]
//!  norm_out, proj_out           LayerNorm, Linear D → D
//! ```
//! MinD-Video embeds patches of the voxel vector and maps its patch tokens to the 77 tokens of
//! SD's context with a 1×1 convolution over the token axis (`token_map` here); the parameters
//! grow with V/P, not with V·77·768, so a CC2017 subject's tens of thousands of voxels fit.
//! Blocks alternate spatial, temporal (MinD-Video's spatiotemporal attention) and are B2C's
//! pre-norm blocks with diffusers' `BasicTransformerBlock` names, so the reference in
//! `tools/fixtures/window_encoder.py` builds them from diffusers' own module.

use std::path::Path;

use crate::b2c::{build_from_folder, per_sample_cosine, per_sample_mse, BlockSizes, EncoderBlock};
use brainrecon_nn::layers::{LayerNorm, Linear};
use brainrecon_nn::loss::symmetric_info_nce;
use brainrecon_nn::rng::dropout;
use brainrecon_nn::{ModelError, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub mod tape;

/// `_class_name` of the config file.
pub const CLASS_NAME: &str = "FmriWindowEncoder";
pub use crate::b2c::{CONFIG_FILE, WEIGHTS_FILE};

fn class_name() -> String {
    CLASS_NAME.to_string()
}

/// The encoder's `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowEncoderConfig {
    /// Must be [`CLASS_NAME`] (`_class_name` in the file).
    #[serde(rename = "_class_name", default = "class_name")]
    pub class_name: String,
    /// K: fMRI frames in a window.
    pub window: usize,
    /// V: voxels of one frame.
    pub voxels: usize,
    /// P: voxels of a patch.
    pub patch_size: usize,
    /// T: tokens of the output context.
    pub tokens: usize,
    /// D: token width, the U-Net's `cross_attention_dim`.
    pub hidden_size: usize,
    /// Spatial + temporal block pairs.
    pub num_layers: usize,
    /// Attention heads of each block.
    pub num_attention_heads: usize,
    /// Width of the blocks' feed-forward hidden layer.
    pub intermediate_size: usize,
    /// Dropout probability in training.
    pub dropout: f64,
    /// Epsilon of the blocks' and `norm_out`'s LayerNorms.
    pub layer_norm_eps: f64,
}

impl WindowEncoderConfig {
    /// A window encoder for K frames of V voxels into T×D contexts: patches of 16 voxels
    /// (MinD-Video's), two block pairs, heads of 64 channels (at least one), a 4× feed-forward,
    /// dropout 0.1.
    pub fn new(window: usize, voxels: usize, tokens: usize, hidden_size: usize) -> Self {
        WindowEncoderConfig {
            class_name: class_name(),
            window,
            voxels,
            patch_size: 16,
            tokens,
            hidden_size,
            num_layers: 2,
            num_attention_heads: (hidden_size / 64).max(1),
            intermediate_size: 4 * hidden_size,
            dropout: 0.1,
            layer_norm_eps: 1e-5,
        }
    }

    /// N: patches of a frame.
    pub fn num_patches(&self) -> usize {
        self.voxels.div_ceil(self.patch_size.max(1))
    }

    /// The sizes of the encoder's spatial and temporal blocks (attention biases on).
    pub fn block_sizes(&self) -> BlockSizes {
        BlockSizes {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            heads: self.num_attention_heads,
            layer_norm_eps: self.layer_norm_eps,
            attention_bias: true,
            dropout: self.dropout,
        }
    }

    /// Bounds every size (hostile `config.json` files): products such as `window · voxels`
    /// and the `patches × hidden_size` position table must neither overflow nor reach GBs.
    fn check_sizes(&self) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::*;
        in_range("window", self.window, 0, 4096)?;
        in_range("voxels", self.voxels, 0, 10_000_000)?;
        in_range("patch_size", self.patch_size, 0, self.voxels.max(1))?;
        in_range("tokens", self.tokens, 0, MAX_CHANNELS)?;
        in_range("hidden_size", self.hidden_size, 0, MAX_CHANNELS)?;
        in_range("num_layers", self.num_layers, 0, MAX_LAYERS)?;
        in_range(
            "num_attention_heads",
            self.num_attention_heads,
            0,
            MAX_LAYERS,
        )?;
        in_range("intermediate_size", self.intermediate_size, 0, MAX_FFN)?;
        epsilon("layer_norm_eps", self.layer_norm_eps)?;
        let table = self.num_patches() as u64 * self.hidden_size as u64;
        if table > 1 << 28 {
            return Err(format!(
                "patch_size: expected at most {} floats of position table (voxels / \
                 patch_size × hidden_size), found {table}",
                1u64 << 28
            ));
        }
        Ok(())
    }

    /// What is wrong with the config, if anything.
    // `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    pub fn problem(&self) -> Option<String> {
        if self.class_name != CLASS_NAME {
            return Some(format!(
                "_class_name is '{}', expected '{CLASS_NAME}'",
                self.class_name
            ));
        }
        if let Err(m) = self.check_sizes() {
            return Some(m);
        }
        let sizes = [
            ("window", self.window),
            ("voxels", self.voxels),
            ("patch_size", self.patch_size),
            ("tokens", self.tokens),
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Some(format!("{name} must be at least 1, found 0"));
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Some(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Some(format!("dropout {} is outside [0, 1)", self.dropout));
        }
        None
    }

    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let config: Self = brainrecon_nn::weights::read_json(path, "fMRI window encoder config")?;
        match config.problem() {
            Some(message) => Err(ModelError::Config {
                path: path.to_path_buf(),
                what: "fMRI window encoder config".into(),
                message,
            }),
            None => Ok(config),
        }
    }
}

/// The encoder (see the module documentation).
#[derive(Debug, Clone)]
pub struct FmriWindowEncoder {
    /// The encoder's config.
    pub config: WindowEncoderConfig,
    /// `patch_embed`: Linear P → D, shared by every patch and frame.
    pub patch_embed: Linear,
    /// `position_embedding.weight`: [N, D], which patch.
    pub position_embedding: Tensor,
    /// `frame_embedding.weight`: [K, D], which frame of the window.
    pub frame_embedding: Tensor,
    /// Self-attention over the N patches of each frame, one per layer.
    pub spatial_blocks: Vec<EncoderBlock>,
    /// Self-attention over the K frames of each patch, one per layer.
    pub temporal_blocks: Vec<EncoderBlock>,
    /// `token_map`: Linear N → T over the token axis.
    pub token_map: Linear,
    /// LayerNorm before `proj_out`.
    pub norm_out: LayerNorm,
    /// Final Linear D → D.
    pub proj_out: Linear,
}

impl FmriWindowEncoder {
    /// Builds the encoder from the names of the module documentation under `vb`. Errors: an invalid
    /// `config` ([`ModelError::Invalid`]), a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, config: &WindowEncoderConfig) -> Result<Self> {
        if let Some(problem) = config.problem() {
            return Err(ModelError::Invalid(format!(
                "fMRI window encoder config: {problem}"
            )));
        }
        let (d, sizes) = (config.hidden_size, config.block_sizes());
        let blocks = |name: &str| {
            (0..config.num_layers)
                .map(|i| EncoderBlock::new(vb.pp(name).pp(i.to_string()), &sizes))
                .collect::<Result<Vec<_>>>()
        };
        let weight = |name: &str, rows: usize| {
            brainrecon_nn::layers::weight(&vb.pp(name), (rows, d), "weight")
        };
        Ok(FmriWindowEncoder {
            config: config.clone(),
            patch_embed: Linear::new(vb.pp("patch_embed"), config.patch_size, d, true)?,
            position_embedding: weight("position_embedding", config.num_patches())?,
            frame_embedding: weight("frame_embedding", config.window)?,
            spatial_blocks: blocks("spatial_blocks")?,
            temporal_blocks: blocks("temporal_blocks")?,
            token_map: Linear::new(
                vb.pp("token_map"),
                config.num_patches(),
                config.tokens,
                true,
            )?,
            norm_out: LayerNorm::new(vb.pp("norm_out"), d, config.layer_norm_eps, true)?,
            proj_out: Linear::new(vb.pp("proj_out"), d, d, true)?,
        })
    }

    /// Reads an encoder folder (`config.json`, `model.safetensors`) in f32 on `device`.
    pub fn from_dir(dir: &Path, device: &candle_core::Device) -> Result<Self> {
        let config = WindowEncoderConfig::from_file(&dir.join(CONFIG_FILE))?;
        build_from_folder(dir, device, |vb| Self::new(vb, &config))
    }

    /// Windows [B, K·V] → context [B, T, D]. Dropout masks come from `rng` (training); `None`
    /// runs without dropout (inference).
    pub fn forward(&self, windows: &Tensor, mut rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let c = &self.config;
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
        let (k, n, d) = (c.window, c.num_patches(), c.hidden_size);
        let padded = match n * c.patch_size - c.voxels {
            0 => windows.reshape((b * k, c.voxels))?,
            pad => windows
                .reshape((b * k, c.voxels))?
                .pad_with_zeros(1, 0, pad)?,
        };
        let x = self
            .patch_embed
            .forward(&padded.reshape((b * k, n, c.patch_size))?)?
            .reshape((b, k, n, d))?
            .broadcast_add(&self.position_embedding.reshape((1, 1, n, d))?)?
            .broadcast_add(&self.frame_embedding.reshape((1, k, 1, d))?)?;
        let mut x = match rng.as_deref_mut() {
            Some(r) => dropout(&x, c.dropout, r)?,
            None => x,
        };
        for (spatial, temporal) in self.spatial_blocks.iter().zip(&self.temporal_blocks) {
            let per_frame = spatial.forward(&x.reshape((b * k, n, d))?, rng.as_deref_mut())?;
            let per_patch =
                per_frame
                    .reshape((b, k, n, d))?
                    .transpose(1, 2)?
                    .reshape((b * n, k, d))?;
            x = temporal
                .forward(&per_patch, rng.as_deref_mut())?
                .reshape((b, n, k, d))?
                .transpose(1, 2)?
                .contiguous()?;
        }
        // [B, N, D] → [B, D, N] · token_map → [B, D, T] → [B, T, D]
        let pooled = x.mean(1)?.transpose(1, 2)?.contiguous()?;
        let tokens = self
            .token_map
            .forward(&pooled)?
            .transpose(1, 2)?
            .contiguous()?;
        self.proj_out.forward(&self.norm_out.forward(&tokens)?)
    }
}

/// MinD-Video's contrastive loss (CLIP's symmetric InfoNCE): the flattened, L2-normalised
/// contexts of the batch against the true ones, logits = cosines / `temperature`; the mean of
/// the two directions' cross-entropies. [B, T, D] pairs → scalar.
pub fn contrastive_loss(predicted: &Tensor, target: &Tensor, temperature: f64) -> Result<Tensor> {
    let normalise = |x: &Tensor| -> Result<Tensor> {
        let x = x.flatten_from(1)?;
        let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-8f32, f32::MAX)?;
        Ok(x.broadcast_div(&norm)?)
    };
    let (p, q) = (normalise(predicted)?, normalise(target)?);
    let logits = (p.matmul(&q.t()?)? / temperature)?;
    symmetric_info_nce(&logits, &logits.t()?.contiguous()?)
}

/// The encoder's training loss without the diffusion term: [`contrastive_loss`] plus
/// `align_weight` × B2C's alignment (MSE + 1 − cosine) against the true contexts. Returns
/// (total, contrastive, alignment) as scalars.
pub fn encoder_loss(
    predicted: &Tensor,
    target: &Tensor,
    temperature: f64,
    align_weight: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let contrastive = contrastive_loss(predicted, target, temperature)?;
    let mse = per_sample_mse(predicted, target)?.mean_all()?;
    let cos = per_sample_cosine(predicted, target)?.mean_all()?;
    let alignment = (mse + cos.affine(-1.0, 1.0)?)?;
    let total = (&contrastive + alignment.affine(align_weight, 0.0)?)?;
    Ok((total, contrastive, alignment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use brainrecon_nn::init::init_parameters;
    use candle_core::{DType, Device};

    fn tiny() -> WindowEncoderConfig {
        let mut c = WindowEncoderConfig::new(3, 5, 4, 8);
        c.patch_size = 2; // 3 patches, the last padded
        c.num_attention_heads = 2;
        c.intermediate_size = 16;
        c
    }

    fn encoder(config: &WindowEncoderConfig) -> FmriWindowEncoder {
        init_parameters(
            |vb| FmriWindowEncoder::new(vb, config),
            3,
            DType::F32,
            &Device::Cpu,
        )
        .unwrap()
        .0
    }

    fn rows(values: Vec<f32>, b: usize) -> Tensor {
        let n = values.len() / b;
        Tensor::from_vec(values, (b, n), &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn configs_are_checked() {
        assert!(tiny().problem().is_none());
        let mut c = tiny();
        c.window = 0;
        assert!(c.problem().unwrap().contains("window"));
        c = tiny();
        c.num_attention_heads = 3;
        assert!(c.problem().unwrap().contains("divisible"));
        let json = serde_json::to_string(&tiny()).unwrap();
        assert!(json.contains("\"_class_name\":\"FmriWindowEncoder\""));
    }

    #[test]
    fn every_frame_counts_and_frame_order_matters() {
        let config = tiny();
        let e = encoder(&config);
        let values: Vec<f32> = (0..30).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect();
        let x = rows(values.clone(), 2);
        let y = e.forward(&x, None).unwrap();
        assert_eq!(y.dims(), &[2, 4, 8]);
        // changing the last frame of sample 0 changes sample 0 only
        let mut changed = values.clone();
        for v in &mut changed[10..15] {
            *v += 1.0;
        }
        let y2 = e.forward(&rows(changed, 2), None).unwrap();
        assert!(max_diff(&y.get(0).unwrap(), &y2.get(0).unwrap()) > 1e-4);
        assert_eq!(max_diff(&y.get(1).unwrap(), &y2.get(1).unwrap()), 0.0);
        // swapping two frames changes the output (the frame embedding tells them apart)
        let mut swapped = values.clone();
        swapped[..15].rotate_left(5);
        let y3 = e.forward(&rows(swapped, 2), None).unwrap();
        assert!(max_diff(&y.get(0).unwrap(), &y3.get(0).unwrap()) > 1e-4);
        let err = e.forward(&rows(vec![0.0; 28], 2), None).unwrap_err();
        assert!(err.to_string().contains("3 frames of 5 voxels"), "{err}");
    }

    #[test]
    fn contrastive_loss_rewards_matching_pairs() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[[1f32, 0.0]], [[0.0, 1.0]]], &dev).unwrap();
        let swapped = Tensor::new(&[[[0f32, 1.0]], [[1.0, 0.0]]], &dev).unwrap();
        let t = 0.5;
        let right = contrastive_loss(&a, &a, t)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let wrong = contrastive_loss(&swapped, &a, t)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // logits 2 on the diagonal and 0 off it: −log(e²/(e² + 1))
        let want = -(2f32.exp() / (2f32.exp() + 1.0)).ln();
        assert!((right - want).abs() < 1e-6, "{right} vs {want}");
        assert!((wrong - (want + 2.0)).abs() < 1e-5, "{wrong}");
    }
}

#[cfg(test)]
mod hostile_tests {
    use super::*;
    use brainrecon_nn::config_bounds::hostile::problems;
    use brainrecon_nn::init::init_parameters;
    use candle_core::{DType, Device};

    /// Every number of a small window-encoder config set to 0, -1, huge or the wrong type: no
    /// panic; huge values and wrong types refused, naming the field; what is accepted builds.
    #[test]
    fn every_numeric_field_is_bounded() {
        let mut config = WindowEncoderConfig::new(3, 5, 4, 8);
        (config.patch_size, config.num_attention_heads) = (2, 2);
        config.intermediate_size = 16;
        let build = |c: &WindowEncoderConfig| {
            let build = |vb| FmriWindowEncoder::new(vb, c);
            init_parameters(build, 1, DType::F32, &Device::Cpu).map(drop)
        };
        let run = |v: &serde_json::Value| {
            crate::b2c::hostile_tests::load_and_build(v, WindowEncoderConfig::from_file, build)
        };
        let found = problems(&serde_json::to_value(&config).unwrap(), &[], &run);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}
