//! The Brain-to-Context (B2C) encoder: fMRI betas → the cross-attention context of a latent
//! diffusion model (Ishizaki & Kobayashi, "拡散モデルを用いた脳活動条件による視覚体験再構成手法").
//!
//! ```text
//! betas [B, V]                 columns ordered group by group (V = Σ V_g)
//!  ├ proj_in.g                 Linear V_g → T_g·D, one per voxel group, reshaped to [B, T_g, D]
//!  └ concatenated              [B, T, D]  (T = Σ T_g: 77 for SD 1.x)
//! + position_embedding.weight  [T, D], learned
//!   dropout
//!   transformer_blocks.i       pre-norm self-attention blocks (diffusers' BasicTransformerBlock
//!                              without cross-attention: norm1, attn1, norm3, ff.net.{0.proj,2})
//!   norm_out                   LayerNorm
//!   proj_out                   Linear D → D
//! ```
//! With ROI patches the groups are anatomical (V1, V2–V4, higher visual, other) and each has its
//! share of the tokens; without patches one group holds every voxel and projects to all T
//! tokens. Parameter names follow diffusers, so the reference implementation in
//! `tools/fixtures/b2c_gradients.py` builds its blocks from diffusers' own module.
//!
//! Dropout follows the diffusers block (after `attn1.to_out.0` and after the feed-forward's
//! GELU) plus one after the position embedding; its masks come from a caller's seeded stream
//! ([`brainrecon_nn::rng::dropout`]), and without a stream (inference) there is none.

use std::path::Path;

use brainrecon_nn::layers::{gelu, multi_head_attention, LayerNorm, Linear};
use brainrecon_nn::rng::dropout;
use brainrecon_nn::{ModelError, Result};
use candle_core::{Tensor, D};
use candle_nn::VarBuilder;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// `_class_name` of the config file.
pub const CLASS_NAME: &str = "BrainToContextEncoder";
/// The config file of an encoder folder.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file of an encoder folder (safetensors).
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// One voxel group: its name, how many betas columns it has, how many tokens it becomes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoxelGroup {
    /// The group's name (an ROI such as `V1`, or one name for all voxels).
    pub name: String,
    /// V_g: betas columns of the group.
    pub voxels: usize,
    /// T_g: context tokens the group becomes.
    pub tokens: usize,
}

fn class_name() -> String {
    CLASS_NAME.to_string()
}
fn default_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

/// The encoder's `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrainToContextConfig {
    /// Must be [`CLASS_NAME`] (`_class_name` in the file).
    #[serde(rename = "_class_name", default = "class_name")]
    pub class_name: String,
    /// Voxel groups in betas column order.
    pub groups: Vec<VoxelGroup>,
    /// Token width D: the U-Net's `cross_attention_dim`.
    pub hidden_size: usize,
    /// Self-attention blocks.
    pub num_layers: usize,
    /// Attention heads of each block.
    pub num_attention_heads: usize,
    /// Width of the feed-forward's hidden layer.
    pub intermediate_size: usize,
    /// Dropout probability in training.
    pub dropout: f64,
    /// Epsilon of the blocks' and `norm_out`'s LayerNorms.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Biases on the attention's q, k, v projections.
    #[serde(default = "yes")]
    pub attention_bias: bool,
}

impl BrainToContextConfig {
    /// The paper's encoder for `groups` and token width `hidden_size`: 6 blocks, heads of 64
    /// channels (at least one), a 4× feed-forward, dropout 0.1.
    pub fn paper(groups: Vec<VoxelGroup>, hidden_size: usize) -> Self {
        BrainToContextConfig {
            class_name: class_name(),
            groups,
            hidden_size,
            num_layers: 6,
            num_attention_heads: (hidden_size / 64).max(1),
            intermediate_size: 4 * hidden_size,
            dropout: 0.1,
            layer_norm_eps: default_eps(),
            attention_bias: true,
        }
    }

    /// T: tokens of the output context.
    pub fn num_tokens(&self) -> usize {
        self.groups.iter().map(|g| g.tokens).sum()
    }

    /// V: betas columns of the input.
    pub fn num_voxels(&self) -> usize {
        self.groups.iter().map(|g| g.voxels).sum()
    }

    /// Bounds every size (hostile `config.json` files): sums over groups must not overflow,
    /// and no field may size a multi-GB buffer.
    fn check_sizes(&self) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::*;
        list_len("groups", self.groups.len(), 1, 4096)?;
        for (i, g) in self.groups.iter().enumerate() {
            in_range(&format!("groups[{i}].voxels"), g.voxels, 0, 10_000_000)?;
            in_range(&format!("groups[{i}].tokens"), g.tokens, 0, MAX_CHANNELS)?;
        }
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
        let tokens = self.num_tokens() as u64 * self.hidden_size as u64;
        if tokens > 1 << 28 {
            return Err(format!(
                "groups: expected at most {} floats of context (tokens × hidden_size), found \
                 {tokens}",
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
        if self.groups.is_empty() {
            return Some("groups is empty: at least one voxel group is needed".into());
        }
        if let Err(m) = self.check_sizes() {
            return Some(m);
        }
        if let Some(g) = self.groups.iter().find(|g| g.voxels == 0 || g.tokens == 0) {
            return Some(format!(
                "group '{}' has {} voxels and {} tokens; both must be at least 1",
                g.name, g.voxels, g.tokens
            ));
        }
        if self.hidden_size == 0 || self.num_attention_heads == 0 {
            return Some("hidden_size and num_attention_heads must be at least 1".into());
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Some(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.intermediate_size == 0 {
            return Some("intermediate_size must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Some(format!("dropout {} is outside [0, 1)", self.dropout));
        }
        None
    }

    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let config: Self = brainrecon_nn::weights::read_json(path, "B2C encoder config")?;
        match config.problem() {
            Some(message) => Err(ModelError::Config {
                path: path.to_path_buf(),
                what: "B2C encoder config".into(),
                message,
            }),
            None => Ok(config),
        }
    }
}

/// Splits `total` tokens over groups in proportion to their voxel counts, each group at least
/// one (largest remainders; ties to the earlier group).
///
/// # Panics
/// When `total` is smaller than the number of groups, or a count is 0.
pub fn allocate_tokens(voxels: &[usize], total: usize) -> Vec<usize> {
    assert!(
        voxels.iter().all(|&v| v > 0),
        "allocate_tokens: empty group"
    );
    assert!(
        total >= voxels.len(),
        "allocate_tokens: {total} tokens for {} groups",
        voxels.len()
    );
    let n = voxels.len();
    let spare = total - n; // one token each first, the rest by share
    let sum: usize = voxels.iter().sum();
    let shares: Vec<f64> = voxels
        .iter()
        .map(|&v| spare as f64 * v as f64 / sum as f64)
        .collect();
    let mut tokens: Vec<usize> = shares.iter().map(|s| 1 + s.floor() as usize).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (shares[a].fract(), shares[b].fract());
        rb.partial_cmp(&ra).unwrap().then(a.cmp(&b))
    });
    let given: usize = tokens.iter().sum();
    for &g in order.iter().take(total - given) {
        tokens[g] += 1;
    }
    tokens
}

/// Sizes of one [`EncoderBlock`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockSizes {
    /// D: token width.
    pub hidden_size: usize,
    /// Width of the feed-forward's hidden layer.
    pub intermediate_size: usize,
    /// Attention heads.
    pub heads: usize,
    /// Epsilon of the LayerNorms.
    pub layer_norm_eps: f64,
    /// Biases on the attention's q, k, v projections.
    pub attention_bias: bool,
    /// Dropout probability in training.
    pub dropout: f64,
}

impl BrainToContextConfig {
    /// The sizes of the encoder's blocks.
    pub fn block_sizes(&self) -> BlockSizes {
        BlockSizes {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            heads: self.num_attention_heads,
            layer_norm_eps: self.layer_norm_eps,
            attention_bias: self.attention_bias,
            dropout: self.dropout,
        }
    }
}

/// A pre-norm self-attention block with diffusers' `BasicTransformerBlock` names.
#[derive(Debug, Clone)]
pub struct EncoderBlock {
    /// LayerNorm before the self-attention.
    pub norm1: LayerNorm,
    /// `attn1.to_q`: query projection, D → D.
    pub to_q: Linear,
    /// `attn1.to_k`: key projection, D → D.
    pub to_k: Linear,
    /// `attn1.to_v`: value projection, D → D.
    pub to_v: Linear,
    /// `attn1.to_out.0`: attention output projection, D → D.
    pub to_out: Linear,
    /// LayerNorm before the feed-forward.
    pub norm3: LayerNorm,
    /// `ff.net.0.proj`: feed-forward input, D → `intermediate_size` (GELU follows).
    pub ff_in: Linear,
    /// `ff.net.2`: feed-forward output, `intermediate_size` → D.
    pub ff_out: Linear,
    /// Attention heads.
    pub heads: usize,
    /// Dropout probability in training.
    pub dropout: f64,
}

impl EncoderBlock {
    /// Builds a block from diffusers' names under `vb`; errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, sizes: &BlockSizes) -> Result<Self> {
        let (d, bias) = (sizes.hidden_size, sizes.attention_bias);
        let attn = vb.pp("attn1");
        let eps = sizes.layer_norm_eps;
        Ok(EncoderBlock {
            norm1: LayerNorm::new(vb.pp("norm1"), d, eps, true)?,
            to_q: Linear::new(attn.pp("to_q"), d, d, bias)?,
            to_k: Linear::new(attn.pp("to_k"), d, d, bias)?,
            to_v: Linear::new(attn.pp("to_v"), d, d, bias)?,
            to_out: Linear::new(attn.pp("to_out").pp("0"), d, d, true)?,
            norm3: LayerNorm::new(vb.pp("norm3"), d, eps, true)?,
            ff_in: Linear::new(
                vb.pp("ff").pp("net").pp("0").pp("proj"),
                d,
                sizes.intermediate_size,
                true,
            )?,
            ff_out: Linear::new(
                vb.pp("ff").pp("net").pp("2"),
                sizes.intermediate_size,
                d,
                true,
            )?,
            heads: sizes.heads,
            dropout: sizes.dropout,
        })
    }

    /// `x` [B, T, D] → [B, T, D]; dropout masks from `rng` when given.
    pub fn forward(&self, x: &Tensor, mut rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let mut drop = |t: Tensor| -> Result<Tensor> {
            match rng.as_deref_mut() {
                Some(r) => dropout(&t, self.dropout, r),
                None => Ok(t),
            }
        };
        let h = self.norm1.forward(x)?;
        let (q, k, v) = (
            self.to_q.forward(&h)?,
            self.to_k.forward(&h)?,
            self.to_v.forward(&h)?,
        );
        let attended = multi_head_attention(&q, &k, &v, self.heads, false, None, false)?;
        let x = (drop(self.to_out.forward(&attended)?)? + x)?;
        let h = self.norm3.forward(&x)?;
        let h = drop(gelu(&self.ff_in.forward(&h)?)?)?;
        Ok((self.ff_out.forward(&h)? + x)?)
    }
}

/// The encoder (see the module documentation).
#[derive(Debug, Clone)]
pub struct BrainToContextEncoder {
    /// The encoder's config.
    pub config: BrainToContextConfig,
    /// `proj_in.g`: one Linear V_g → T_g·D per voxel group, in group order.
    pub proj_in: Vec<Linear>,
    /// `position_embedding.weight`: [T, D], learned.
    pub position_embedding: Tensor,
    /// Pre-norm self-attention blocks.
    pub transformer_blocks: Vec<EncoderBlock>,
    /// LayerNorm over the blocks' output.
    pub norm_out: LayerNorm,
    /// Final Linear D → D.
    pub proj_out: Linear,
}

impl BrainToContextEncoder {
    /// Builds the encoder from the names of the module documentation under `vb`. Errors: an invalid
    /// `config` ([`ModelError::Invalid`]), a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, config: &BrainToContextConfig) -> Result<Self> {
        if let Some(problem) = config.problem() {
            return Err(ModelError::Invalid(format!(
                "B2C encoder config: {problem}"
            )));
        }
        let d = config.hidden_size;
        let proj_in = config
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                Linear::new(
                    vb.pp("proj_in").pp(g.to_string()),
                    group.voxels,
                    group.tokens * d,
                    true,
                )
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let position_embedding = brainrecon_nn::layers::weight(
            &vb.pp("position_embedding"),
            (config.num_tokens(), d),
            "weight",
        )?;
        let transformer_blocks = (0..config.num_layers)
            .map(|i| {
                EncoderBlock::new(
                    vb.pp("transformer_blocks").pp(i.to_string()),
                    &config.block_sizes(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BrainToContextEncoder {
            config: config.clone(),
            proj_in,
            position_embedding,
            transformer_blocks,
            norm_out: LayerNorm::new(vb.pp("norm_out"), d, config.layer_norm_eps, true)?,
            proj_out: Linear::new(vb.pp("proj_out"), d, d, true)?,
        })
    }

    /// Reads an encoder folder (`config.json`, `model.safetensors`) in f32 on `device`.
    pub fn from_dir(dir: &Path, device: &candle_core::Device) -> Result<Self> {
        let config = BrainToContextConfig::from_file(&dir.join(CONFIG_FILE))?;
        build_from_folder(dir, device, |vb| Self::new(vb, &config))
    }

    /// Betas [B, V] (columns in group order) → context [B, T, D]. Dropout masks come from
    /// `rng` (training); `None` runs without dropout (inference).
    pub fn forward(&self, betas: &Tensor, mut rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let (b, v) = betas.dims2()?;
        let config = &self.config;
        if v != config.num_voxels() {
            return Err(ModelError::Invalid(format!(
                "B2C encoder: betas have {v} columns, the encoder expects {} ({})",
                config.num_voxels(),
                group_summary(config)
            )));
        }
        let d = config.hidden_size;
        let mut tokens = Vec::with_capacity(config.groups.len());
        let mut offset = 0;
        for (group, proj) in config.groups.iter().zip(&self.proj_in) {
            let x = betas.narrow(1, offset, group.voxels)?;
            tokens.push(proj.forward(&x)?.reshape((b, group.tokens, d))?);
            offset += group.voxels;
        }
        let x = Tensor::cat(&tokens, 1)?.broadcast_add(&self.position_embedding)?;
        let mut x = match rng.as_deref_mut() {
            Some(r) => dropout(&x, config.dropout, r)?,
            None => x,
        };
        for block in &self.transformer_blocks {
            x = block.forward(&x, rng.as_deref_mut())?;
        }
        self.proj_out.forward(&self.norm_out.forward(&x)?)
    }
}

/// `build` on the weights of `dir`'s `model.safetensors` (f32 on `device`); a tensor the
/// model lacks or misshapes is an error naming the file.
pub(crate) fn build_from_folder<M>(
    dir: &Path,
    device: &candle_core::Device,
    build: impl FnOnce(VarBuilder) -> Result<M>,
) -> Result<M> {
    let file = dir.join(WEIGHTS_FILE);
    let weights = brainrecon_nn::weights::Weights::from_files(
        std::slice::from_ref(&file),
        candle_core::DType::F32,
        device,
    )?;
    build(weights.var_builder())
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", file.display())))
}

/// "V1 1200 voxels → 6 tokens, …" for messages.
pub fn group_summary(config: &BrainToContextConfig) -> String {
    config
        .groups
        .iter()
        .map(|g| format!("{} {} voxels → {} tokens", g.name, g.voxels, g.tokens))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Mean over the last two dims of `(a − b)²` per sample: `[B, T, D]` pairs → `[B]`.
pub fn per_sample_mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok((a - b)?.sqr()?.flatten_from(1)?.mean(D::Minus1)?)
}

/// Cosine similarity of each sample's flattened tensors: `[B, ...]` pairs → `[B]`.
pub fn per_sample_cosine(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (a, b) = (a.flatten_from(1)?, b.flatten_from(1)?);
    let dot = (&a * &b)?.sum(D::Minus1)?;
    let norms = (a.sqr()?.sum(D::Minus1)?.sqrt()? * b.sqr()?.sum(D::Minus1)?.sqrt()?)?;
    // torch's cosine_similarity clamps the product of norms at eps = 1e-8
    Ok(dot.div(&norms.clamp(1e-8f32, f32::MAX)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use brainrecon_nn::init::init_parameters;
    use candle_core::{DType, Device};

    fn tiny(groups: &[(usize, usize)]) -> BrainToContextConfig {
        let mut c = BrainToContextConfig::paper(
            groups
                .iter()
                .enumerate()
                .map(|(i, &(voxels, tokens))| VoxelGroup {
                    name: format!("g{i}"),
                    voxels,
                    tokens,
                })
                .collect(),
            8,
        );
        c.num_layers = 2;
        c.num_attention_heads = 2;
        c.intermediate_size = 16;
        c
    }

    #[test]
    fn tokens_follow_voxel_shares_and_every_group_gets_one() {
        assert_eq!(allocate_tokens(&[15724], 77), vec![77]);
        let t = allocate_tokens(&[1200, 3000, 6000, 5524], 77);
        assert_eq!(t.iter().sum::<usize>(), 77);
        assert!(t.windows(2).take(2).all(|w| w[0] < w[1]), "{t:?}");
        assert_eq!(allocate_tokens(&[1, 1_000_000], 4), vec![1, 3]);
        assert_eq!(allocate_tokens(&[5, 5, 5], 4), vec![2, 1, 1]);
    }

    #[test]
    fn configs_are_checked() {
        assert!(tiny(&[(4, 2), (3, 1)]).problem().is_none());
        assert!(tiny(&[(0, 2)]).problem().unwrap().contains("g0"));
        let mut c = tiny(&[(4, 2)]);
        c.num_attention_heads = 3;
        assert!(c.problem().unwrap().contains("divisible"));
        c = tiny(&[(4, 2)]);
        c.dropout = 1.0;
        assert!(c.problem().is_some());
        let json = serde_json::to_string(&tiny(&[(4, 2)])).unwrap();
        assert!(json.contains("\"_class_name\":\"BrainToContextEncoder\""));
    }

    #[test]
    fn output_has_the_context_shape_and_groups_see_only_their_columns() {
        let config = tiny(&[(4, 2), (3, 1)]);
        let (encoder, params) = init_parameters(
            |vb| BrainToContextEncoder::new(vb, &config),
            7,
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        assert!(params.names().contains(&"proj_in.1.weight".to_string()));
        assert!(params
            .names()
            .contains(&"transformer_blocks.1.ff.net.0.proj.weight".to_string()));
        let x = Tensor::ones((2, 7), DType::F32, &Device::Cpu).unwrap();
        let y = encoder.forward(&x, None).unwrap();
        assert_eq!(y.dims(), &[2, 3, 8]);
        // the gradient of group 0's projection does not depend on group 1's columns
        let loss = encoder.forward(&x, None).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let w1 = params.get("proj_in.1.weight").unwrap();
        assert_eq!(grads.get(w1.as_tensor()).unwrap().dims(), &[8, 3]);
        assert!(encoder
            .forward(
                &Tensor::ones((2, 6), DType::F32, &Device::Cpu).unwrap(),
                None
            )
            .unwrap_err()
            .to_string()
            .contains("7"));
        // dropout changes the output only when a stream is given
        let mut rng = brainrecon_nn::rng::dropout_stream(1, 0);
        let dropped = encoder.forward(&x, Some(&mut rng)).unwrap();
        let plain = encoder.forward(&x, None).unwrap();
        let diff = (dropped - &plain)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() > 0.0);
        assert_eq!(
            (encoder.forward(&x, None).unwrap() - plain)
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
    }

    #[test]
    fn cosine_and_mse_per_sample() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[[1f32, 0.0]], [[1.0, 1.0]]], &dev).unwrap();
        let b = Tensor::new(&[[[2f32, 0.0]], [[-1.0, -1.0]]], &dev).unwrap();
        let cos = per_sample_cosine(&a, &b).unwrap().to_vec1::<f32>().unwrap();
        assert!((cos[0] - 1.0).abs() < 1e-6 && (cos[1] + 1.0).abs() < 1e-6);
        let mse = per_sample_mse(&a, &b).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(mse, vec![0.5, 4.0]);
    }
}

#[cfg(test)]
pub(crate) mod hostile_tests {
    use super::*;
    use brainrecon_nn::config_bounds::hostile::problems;
    use brainrecon_nn::init::init_parameters;
    use candle_core::{DType, Device};
    use serde_json::Value;

    /// Writes `value` as a config file, loads it with `load` and, when accepted, builds the
    /// model on the CPU with `build`.
    pub(crate) fn load_and_build<C>(
        value: &Value,
        load: fn(&Path) -> Result<C>,
        build: fn(&C) -> Result<()>,
    ) -> std::result::Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, value.to_string()).unwrap();
        let config = load(&path).map_err(|e| e.to_string())?;
        build(&config).map_err(|e| e.to_string())
    }

    /// Every number of a small B2C config set to 0, -1, huge or the wrong type: no panic;
    /// huge values and wrong types refused, naming the field; what is accepted builds.
    #[test]
    fn every_numeric_field_is_bounded() {
        let mut config = BrainToContextConfig::paper(
            vec![VoxelGroup {
                name: "v1".into(),
                voxels: 6,
                tokens: 2,
            }],
            8,
        );
        (config.num_layers, config.num_attention_heads) = (1, 2);
        config.intermediate_size = 16;
        let build = |c: &BrainToContextConfig| {
            let build = |vb| BrainToContextEncoder::new(vb, c);
            init_parameters(build, 1, DType::F32, &Device::Cpu).map(drop)
        };
        let run = |v: &Value| load_and_build(v, BrainToContextConfig::from_file, build);
        let found = problems(&serde_json::to_value(&config).unwrap(), &[], &run);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}
