//! AnimateDiff motion modules: diffusers' `AnimateDiffTransformer3D`, the temporal transformer
//! that `MotionAdapter` / `UNetMotionModel` place after each resnet + attention pair.
//!
//! A module sees a batch of clips as `[b·f, c, h, w]` (frames of a clip consecutive, as the
//! image U-Net sees them), attends across the `f` frames of every pixel independently, and adds
//! the result to its input. Parameter names are diffusers': `norm`, `proj_in`,
//! `transformer_blocks.N.{norm1, attn1, norm2, attn2, norm3, ff, pos_embed.pe}`, `proj_out`, so
//! the tensors under e.g. `down_blocks.0.motion_modules.1` of a diffusers motion adapter load
//! unchanged; [`MotionAdapter`] loads a whole diffusers motion-adapter folder. Built from the
//! project's differentiable layers, so the modules can be trained.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::unet::{FeedForward, OneOrMany, WEIGHTS_FILE};
use brainrecon_nn::init::{init_parameters_with, record_parameters, ParamInit};
use brainrecon_nn::layers::{self as nn, Attention, Conv2d, GroupNorm, LayerNorm, Linear};
use brainrecon_nn::params::Parameters;
use brainrecon_nn::{Error, Result};

/// The frame-position encoding added before each temporal attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionalEmbedding {
    /// diffusers' `SinusoidalPositionalEmbedding`: sin on even, cos on odd channels.
    Sinusoidal,
}

/// Configuration of one `AnimateDiffTransformer3D` (the arguments diffusers' `MotionModules`
/// passes it).
#[derive(Debug, Clone, PartialEq)]
pub struct MotionModuleConfig {
    /// Channels of the feature map the module sits on (input and output).
    pub in_channels: usize,
    /// Attention heads of the temporal attentions.
    pub num_attention_heads: usize,
    /// Width of one head; the blocks are `heads · head_dim` wide.
    pub attention_head_dim: usize,
    /// Temporal transformer blocks (`transformer_blocks.N`).
    pub num_layers: usize,
    /// Groups of the input group norm (the adapter's `motion_norm_num_groups`).
    pub norm_num_groups: usize,
    /// Longest clip the positional table covers (the adapter's `motion_max_seq_length`).
    pub max_seq_length: usize,
    /// Feed-forward activation; diffusers' adapters always use `"geglu"`, the only one here.
    pub activation_fn: String,
    /// `Some(Sinusoidal)` in every motion adapter; `None` drops the frame positions.
    pub positional_embeddings: Option<PositionalEmbedding>,
    /// Biases on `to_q` / `to_k` / `to_v` (false in `MotionAdapter`).
    pub attention_bias: bool,
}

impl MotionModuleConfig {
    /// The module `MotionModules` builds on `in_channels` channels: head dim
    /// `in_channels / heads`, GEGLU, sinusoidal positions, no attention biases.
    pub fn for_adapter(
        in_channels: usize,
        num_attention_heads: usize,
        num_layers: usize,
        norm_num_groups: usize,
        max_seq_length: usize,
    ) -> Self {
        Self {
            in_channels,
            num_attention_heads,
            attention_head_dim: in_channels / num_attention_heads.max(1),
            num_layers,
            norm_num_groups,
            max_seq_length,
            activation_fn: "geglu".to_string(),
            positional_embeddings: Some(PositionalEmbedding::Sinusoidal),
            attention_bias: false,
        }
    }

    /// Width of the transformer blocks, `heads · head_dim`.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    // `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    /// Checks the sizes, the activation (`geglu` only) and that sinusoidal positions get an even
    /// width; errors with [`Error::InvalidConfig`].
    #[allow(clippy::manual_is_multiple_of)]
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidConfig(format!("motion module: {msg}")));
        if self.in_channels == 0 || self.inner_dim() == 0 {
            return bad(format!(
                "in_channels ({}) and num_attention_heads × attention_head_dim ({} × {}) must \
                 be positive",
                self.in_channels, self.num_attention_heads, self.attention_head_dim
            ));
        }
        if self.norm_num_groups == 0 || self.in_channels % self.norm_num_groups != 0 {
            return bad(format!(
                "in_channels {} is not divisible into norm_num_groups {}",
                self.in_channels, self.norm_num_groups
            ));
        }
        if self.activation_fn != "geglu" {
            return bad(format!(
                "activation_fn \"{}\" is not supported (expected \"geglu\", as in every \
                 motion adapter)",
                self.activation_fn
            ));
        }
        if self.positional_embeddings.is_some() {
            if self.max_seq_length == 0 {
                return bad("max_seq_length must be positive".into());
            }
            // diffusers' table interleaves sin and cos pairs, which needs an even width.
            if self.inner_dim() % 2 != 0 {
                return bad(format!(
                    "sinusoidal positions need an even width, got {}",
                    self.inner_dim()
                ));
            }
        }
        Ok(())
    }
}

/// diffusers' sinusoidal table [max_len, dim]: `pe[p, 2i] = sin(p·ω_i)`,
/// `pe[p, 2i+1] = cos(p·ω_i)`, `ω_i = exp(−2i·ln(10000)/dim)`.
pub fn sinusoidal_table(max_len: usize, dim: usize, device: &Device) -> Result<Tensor> {
    let mut data = vec![0f32; max_len * dim];
    for p in 0..max_len {
        for i in (0..dim).step_by(2) {
            // diffusers computes the frequencies in f32 and the angle as an f32 product.
            let freq = (i as f32 * (-(10000f32).ln() / dim as f32)).exp();
            let angle = p as f32 * freq;
            data[p * dim + i] = angle.sin();
            if i + 1 < dim {
                data[p * dim + i + 1] = angle.cos();
            }
        }
    }
    Ok(Tensor::from_vec(data, (max_len, dim), device)?)
}

/// Where a module's positional table comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PositionTable {
    /// The checkpoint's `pos_embed.pe` buffer when it has one (diffusers loads the buffer),
    /// else the formula.
    StoredOrComputed,
    /// Always the formula (fresh modules: the buffer is not a parameter to initialise).
    Computed,
}

/// One `transformer_blocks.N`: two temporal self-attentions (`attn1`, `attn2`, each after a
/// layer norm and the frame positions) and a GEGLU feed-forward, all residual.
#[derive(Debug, Clone)]
pub struct TemporalTransformerBlock {
    /// LayerNorm before `attn1`.
    pub norm1: LayerNorm,
    /// `attn1`: the first temporal self-attention.
    pub attn1: Attention,
    /// LayerNorm before `attn2`.
    pub norm2: LayerNorm,
    /// `attn2`: the second temporal self-attention (no cross-attention in motion modules).
    pub attn2: Attention,
    /// LayerNorm before the feed-forward.
    pub norm3: LayerNorm,
    /// `ff`: the GEGLU feed-forward (4× width).
    pub ff: FeedForward,
    /// `pos_embed.pe` as [max_seq_length, dim] (None without positional embeddings).
    pub pos_embed: Option<Tensor>,
}

impl TemporalTransformerBlock {
    fn new(vb: VarBuilder, cfg: &MotionModuleConfig, table: PositionTable) -> Result<Self> {
        let dim = cfg.inner_dim();
        let (heads, head_dim) = (cfg.num_attention_heads, cfg.attention_head_dim);
        let attn = |name: &str| {
            Attention::new(
                vb.pp(name),
                dim,
                None,
                heads,
                head_dim,
                cfg.attention_bias,
                false,
            )
        };
        let pos_embed = match cfg.positional_embeddings {
            Some(PositionalEmbedding::Sinusoidal) => {
                Some(position_table(&vb.pp("pos_embed"), cfg, table)?)
            }
            None => None,
        };
        Ok(Self {
            norm1: LayerNorm::new(vb.pp("norm1"), dim, 1e-5, true)?,
            attn1: attn("attn1")?,
            norm2: LayerNorm::new(vb.pp("norm2"), dim, 1e-5, true)?,
            attn2: attn("attn2")?,
            norm3: LayerNorm::new(vb.pp("norm3"), dim, 1e-5, true)?,
            ff: FeedForward::new(vb.pp("ff"), dim, 4)?,
            pos_embed,
        })
    }

    /// Adds the positions of the first `f` frames to `x` [n, f, dim].
    fn add_positions(&self, x: &Tensor) -> Result<Tensor> {
        match &self.pos_embed {
            Some(pe) => {
                let f = x.dim(1)?;
                Ok(x.broadcast_add(&pe.narrow(0, 0, f)?.to_dtype(x.dtype())?)?)
            }
            None => Ok(x.clone()),
        }
    }

    /// `x` [b·h·w, f, dim] → same shape.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = self.add_positions(&self.norm1.forward(x)?)?;
        let x = (self.attn1.forward(&n, None)? + x)?;
        let n = self.add_positions(&self.norm2.forward(&x)?)?;
        let x = (self.attn2.forward(&n, None)? + x)?;
        Ok((self.ff.forward(&self.norm3.forward(&x)?)? + x)?)
    }
}

/// The block's positional table [max_seq_length, dim] in the builder's dtype.
fn position_table(
    vb: &VarBuilder,
    cfg: &MotionModuleConfig,
    table: PositionTable,
) -> Result<Tensor> {
    let (len, dim) = (cfg.max_seq_length, cfg.inner_dim());
    if table == PositionTable::StoredOrComputed && vb.contains_tensor("pe") {
        // A stored table of another length means the config's max_seq_length is wrong:
        // `weight` names the tensor and both shapes.
        let pe = nn::weight(vb, (1, len, dim), "pe")?;
        return Ok(pe.squeeze(0)?);
    }
    Ok(sinusoidal_table(len, dim, vb.device())?.to_dtype(vb.dtype())?)
}

/// diffusers' `AnimateDiffTransformer3D`: group norm over each clip, `proj_in`, temporal
/// transformer blocks over the frames of every pixel, `proj_out`, plus the input.
#[derive(Debug, Clone)]
pub struct AnimateDiffTransformer3D {
    /// `norm`: GroupNorm over each clip (eps 1e-6).
    pub norm: GroupNorm,
    /// `proj_in`: Linear c → inner.
    pub proj_in: Linear,
    /// `transformer_blocks`: the temporal blocks.
    pub transformer_blocks: Vec<TemporalTransformerBlock>,
    /// `proj_out`: Linear inner → c.
    pub proj_out: Linear,
    /// The module's config.
    pub config: MotionModuleConfig,
}

impl AnimateDiffTransformer3D {
    /// Loads a module from `vb` at its diffusers prefix (e.g. `down_blocks.0.motion_modules.0`).
    /// A stored `pos_embed.pe` is used as diffusers uses it; absent, the formula gives it.
    pub fn new(vb: VarBuilder, config: &MotionModuleConfig) -> Result<Self> {
        Self::build(vb, config, PositionTable::StoredOrComputed)
    }

    fn build(vb: VarBuilder, config: &MotionModuleConfig, table: PositionTable) -> Result<Self> {
        config.validate()?;
        let (c, inner) = (config.in_channels, config.inner_dim());
        let transformer_blocks = (0..config.num_layers)
            .map(|i| {
                TemporalTransformerBlock::new(vb.pp("transformer_blocks").pp(i), config, table)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            norm: GroupNorm::new(vb.pp("norm"), config.norm_num_groups, c, 1e-6)?,
            proj_in: Linear::new(vb.pp("proj_in"), c, inner, true)?,
            transformer_blocks,
            proj_out: Linear::new(vb.pp("proj_out"), inner, c, true)?,
            config: config.clone(),
        })
    }

    /// A fresh, trainable module: PyTorch's default initialisation seeded by `seed` (and each
    /// parameter's name), except `proj_out`, which starts at zero (AnimateDiff's
    /// `zero_initialize`) so that the untrained module returns its input and a U-Net with it
    /// reduces exactly to the image model.
    pub fn init_zero_out(
        config: &MotionModuleConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> brainrecon_nn::Result<(Self, Parameters)> {
        init_parameters_with(
            |vb| Self::build(vb, config, PositionTable::Computed),
            seed,
            dtype,
            device,
            zero_proj_out,
        )
    }

    /// `hidden_states` [b·f, c, h, w] with the `num_frames` frames of each clip consecutive →
    /// [b·f, c, h, w]. More frames than `max_seq_length` (with positions) is an error.
    pub fn forward(&self, hidden_states: &Tensor, num_frames: usize) -> Result<Tensor> {
        let (bf, c, h, w) = self.check_input(hidden_states, num_frames)?;
        let (b, f) = (bf / num_frames, num_frames);
        // (b·f, c, h, w) → (b, c, f, h, w): the group norm pools each clip's frames together.
        let x = hidden_states
            .reshape((b, f, c, h, w))?
            .permute((0, 2, 1, 3, 4))?;
        let x = self.norm.forward(&x.contiguous()?)?;
        let x = x.permute((0, 3, 4, 2, 1))?.reshape((b * h * w, f, c))?;
        let mut x = self.proj_in.forward(&x)?;
        for block in &self.transformer_blocks {
            x = block.forward(&x)?;
        }
        let x = self.proj_out.forward(&x)?;
        // (b·h·w, f, c) → (b, h, w, f, c) → (b, f, c, h, w) → (b·f, c, h, w)
        let x = x
            .reshape((b, h, w, f, c))?
            .permute((0, 3, 4, 1, 2))?
            .contiguous()?
            .reshape((bf, c, h, w))?;
        Ok((x + hidden_states)?)
    }

    // `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    fn check_input(&self, x: &Tensor, num_frames: usize) -> Result<(usize, usize, usize, usize)> {
        let bad = |name: &'static str, msg: String| Err(Error::InvalidInput { name, msg });
        let dims = x.dims().to_vec();
        let [bf, c, h, w] = dims[..] else {
            return bad(
                "motion module input",
                format!("shape {dims:?}, expected [batch·frames, channels, height, width]"),
            );
        };
        if c != self.config.in_channels {
            return bad(
                "motion module input",
                format!("{c} channels, the module has {}", self.config.in_channels),
            );
        }
        if num_frames == 0 || bf % num_frames != 0 {
            return bad(
                "num_frames",
                format!("{num_frames} frames do not divide the {bf} rows of the input"),
            );
        }
        let max = self.config.max_seq_length;
        if self.config.positional_embeddings.is_some() && num_frames > max {
            return bad(
                "num_frames",
                format!(
                    "{num_frames} frames, but the motion module's positions cover at most {max} \
                     (motion_max_seq_length of the adapter)"
                ),
            );
        }
        Ok((bf, c, h, w))
    }
}

/// Initialisation rule: every `proj_out` tensor at zero, the rest PyTorch's default.
pub fn zero_proj_out(name: &str, _shape: &[usize], default: ParamInit) -> ParamInit {
    let leaf_module = name.rsplit_once('.').map(|(m, _)| m).unwrap_or("");
    if leaf_module == "proj_out" || leaf_module.ends_with(".proj_out") {
        ParamInit::Constant(0.0)
    } else {
        default
    }
}

/// diffusers' `MotionAdapter` `config.json` (the fields that shape the modules; others, such
/// as `_class_name`, are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct MotionAdapterConfig {
    /// Channels of each U-Net level (the image U-Net's `block_out_channels`).
    #[serde(default = "default_block_out_channels")]
    pub block_out_channels: Vec<usize>,
    /// Motion modules per down block (an up block has one more).
    #[serde(default = "default_layers_per_block")]
    pub motion_layers_per_block: OneOrMany,
    /// Temporal blocks in each motion module of the down and up blocks.
    #[serde(default = "default_one_layer")]
    pub motion_transformer_layers_per_block: LayersPerBlock,
    /// Motion modules of the mid block.
    #[serde(default = "one")]
    pub motion_mid_block_layers_per_block: usize,
    /// Temporal blocks in each motion module of the mid block.
    #[serde(default = "default_mid_layers")]
    pub motion_transformer_layers_per_mid_block: OneOrMany,
    /// Attention heads of the modules, per block.
    #[serde(default = "default_heads")]
    pub motion_num_attention_heads: OneOrMany,
    /// GroupNorm groups of each module's input norm.
    #[serde(default = "default_groups")]
    pub motion_norm_num_groups: usize,
    /// Longest clip, in frames, the positional tables cover.
    #[serde(default = "default_max_seq_length")]
    pub motion_max_seq_length: usize,
    /// Whether the mid block has motion modules.
    #[serde(default = "yes")]
    pub use_motion_mid_block: bool,
    /// Input channels of PIA's extra `conv_in`; `None` (or 0) for AnimateDiff adapters.
    #[serde(default)]
    pub conv_in_channels: Option<usize>,
}

/// `motion_transformer_layers_per_block`: one count for all, one per block, or per block a
/// count per motion module.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum LayersPerBlock {
    /// One count for every module of every block.
    One(usize),
    /// Per block: one count, or one per motion module.
    Many(Vec<OneOrMany>),
}

impl LayersPerBlock {
    /// `n` blocks' worth of counts, each in `1..=MAX_LAYERS`; errors name `field`.
    pub fn check(&self, field: &str, n: usize) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::{all_positive, list_len, positive, MAX_LAYERS};
        match self {
            LayersPerBlock::One(k) => positive(field, *k, MAX_LAYERS),
            LayersPerBlock::Many(v) => {
                list_len(field, v.len(), n, n)?;
                for (i, d) in v.iter().enumerate() {
                    let values = match d {
                        OneOrMany::One(k) => std::slice::from_ref(k),
                        OneOrMany::Many(ks) => ks.as_slice(),
                    };
                    list_len(&format!("{field}[{i}]"), values.len(), 1, MAX_LAYERS)?;
                    all_positive(&format!("{field}[{i}]"), values, MAX_LAYERS)?;
                }
                Ok(())
            }
        }
    }
}

fn default_block_out_channels() -> Vec<usize> {
    vec![320, 640, 1280, 1280]
}
fn default_layers_per_block() -> OneOrMany {
    OneOrMany::One(2)
}
fn default_one_layer() -> LayersPerBlock {
    LayersPerBlock::One(1)
}
fn one() -> usize {
    1
}
fn default_mid_layers() -> OneOrMany {
    OneOrMany::One(1)
}
fn default_heads() -> OneOrMany {
    OneOrMany::One(8)
}
fn default_groups() -> usize {
    32
}
fn default_max_seq_length() -> usize {
    32
}
fn yes() -> bool {
    true
}

impl MotionAdapterConfig {
    /// Parses an adapter's `config.json`; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let cfg: Self = nn::read_json_config(path)?;
        cfg.module_configs().map_err(|e| e.in_file(path))?;
        Ok(cfg)
    }

    /// Bounds every size-like field before any tensor is built (hostile `config.json` files):
    /// the positional table alone is `motion_max_seq_length × channels` floats.
    pub fn check_sizes(&self) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::*;
        let n = self.block_out_channels.len();
        list_len("block_out_channels", n, 1, 8)?;
        all_positive("block_out_channels", &self.block_out_channels, MAX_CHANNELS)?;
        let per_block = |v: &OneOrMany, field: &str, count: usize, max: usize| {
            let v = v.per_block(count, field).map_err(|e| e.to_string())?;
            all_positive(field, &v, max)
        };
        per_block(
            &self.motion_layers_per_block,
            "motion_layers_per_block",
            n,
            MAX_LAYERS,
        )?;
        per_block(
            &self.motion_num_attention_heads,
            "motion_num_attention_heads",
            n,
            MAX_LAYERS,
        )?;
        let depth = &self.motion_transformer_layers_per_block;
        depth.check("motion_transformer_layers_per_block", n)?;
        let mid = "motion_mid_block_layers_per_block";
        positive(mid, self.motion_mid_block_layers_per_block, MAX_LAYERS)?;
        let mid_depth = &self.motion_transformer_layers_per_mid_block;
        let mid_count = self.motion_mid_block_layers_per_block;
        per_block(
            mid_depth,
            "motion_transformer_layers_per_mid_block",
            mid_count,
            MAX_LAYERS,
        )?;
        groups_divide(
            "motion_norm_num_groups",
            self.motion_norm_num_groups,
            &self.block_out_channels,
        )?;
        // Frames per clip: diffusers' adapters use 32; 65536 keeps the table under 1 GB.
        positive("motion_max_seq_length", self.motion_max_seq_length, 65_536)?;
        if let Some(c) = self.conv_in_channels {
            positive("conv_in_channels", c, MAX_CHANNELS)?;
        }
        Ok(())
    }

    /// Per block (down blocks, the mid block if any, up blocks), the config of each motion
    /// module, as diffusers' `MotionAdapter.__init__` lays them out.
    #[allow(clippy::type_complexity)]
    pub fn module_configs(
        &self,
    ) -> Result<(
        Vec<Vec<MotionModuleConfig>>,
        Option<Vec<MotionModuleConfig>>,
        Vec<Vec<MotionModuleConfig>>,
    )> {
        let n = self.block_out_channels.len();
        self.check_sizes().map_err(Error::InvalidConfig)?;
        let layers = self
            .motion_layers_per_block
            .per_block(n, "motion_layers_per_block")?;
        let heads = self
            .motion_num_attention_heads
            .per_block(n, "motion_num_attention_heads")?;
        let transformer_layers: Vec<OneOrMany> = match &self.motion_transformer_layers_per_block {
            LayersPerBlock::One(k) => vec![OneOrMany::One(*k); n],
            LayersPerBlock::Many(v) if v.len() == n => v.clone(),
            LayersPerBlock::Many(v) => {
                return Err(Error::InvalidConfig(format!(
                    "motion_transformer_layers_per_block has {} entries for {n} blocks",
                    v.len()
                )))
            }
        };
        let block = |c: usize, h: usize, modules: usize, depth: &OneOrMany, field: &str| {
            let depths = depth.per_block(modules, field)?;
            let cfgs: Vec<MotionModuleConfig> = depths
                .into_iter()
                .map(|d| {
                    let cfg = MotionModuleConfig::for_adapter(
                        c,
                        h,
                        d,
                        self.motion_norm_num_groups,
                        self.motion_max_seq_length,
                    );
                    cfg.validate().map(|_| cfg)
                })
                .collect::<Result<_>>()?;
            Ok::<_, Error>(cfgs)
        };
        let field = "motion_transformer_layers_per_block";
        let channels = &self.block_out_channels;
        let down = (0..n)
            .map(|i| {
                block(
                    channels[i],
                    heads[i],
                    layers[i],
                    &transformer_layers[i],
                    field,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let mid = if self.use_motion_mid_block {
            Some(block(
                channels[n - 1],
                heads[n - 1],
                self.motion_mid_block_layers_per_block,
                &self.motion_transformer_layers_per_mid_block,
                "motion_transformer_layers_per_mid_block",
            )?)
        } else {
            None
        };
        // Up blocks run from the deepest block up, one module more than their down block.
        let up = (0..n)
            .rev()
            .map(|i| {
                block(
                    channels[i],
                    heads[i],
                    layers[i] + 1,
                    &transformer_layers[i],
                    field,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((down, mid, up))
    }
}

/// diffusers' `MotionModules`: the `motion_modules.M` of one U-Net block.
#[derive(Debug, Clone)]
pub struct MotionModules {
    /// `motion_modules.M`, in order.
    pub motion_modules: Vec<AnimateDiffTransformer3D>,
}

impl MotionModules {
    fn new(vb: VarBuilder, configs: &[MotionModuleConfig], table: PositionTable) -> Result<Self> {
        let motion_modules = configs
            .iter()
            .enumerate()
            .map(|(m, cfg)| {
                AnimateDiffTransformer3D::build(vb.pp("motion_modules").pp(m), cfg, table)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { motion_modules })
    }
}

/// diffusers' `MotionAdapter`: the motion modules of every down, mid and up block (and the
/// optional `conv_in`), to be placed in an image U-Net.
#[derive(Debug, Clone)]
pub struct MotionAdapter {
    /// `conv_in` of a PIA adapter ([`MotionAdapterConfig::conv_in_channels`]).
    pub conv_in: Option<Conv2d>,
    /// `down_blocks.N`.
    pub down_blocks: Vec<MotionModules>,
    /// `mid_block` (when `use_motion_mid_block`).
    pub mid_block: Option<MotionModules>,
    /// `up_blocks.N`, from the deepest block up.
    pub up_blocks: Vec<MotionModules>,
    /// The adapter's config.
    pub config: MotionAdapterConfig,
}

impl MotionAdapter {
    /// Loads the modules from `vb` (rooted at the adapter's or the motion U-Net's parameters);
    /// stored `pos_embed.pe` tables are used, absent ones computed.
    pub fn new(vb: VarBuilder, config: &MotionAdapterConfig) -> Result<Self> {
        Self::build(vb, config, PositionTable::StoredOrComputed)
    }

    /// A fresh, trainable adapter: every module as [`AnimateDiffTransformer3D::init_zero_out`]
    /// makes it (seeded PyTorch defaults, `proj_out` at zero), so that a U-Net with it reduces
    /// exactly to the image model. Parameter names are the adapter's
    /// (`down_blocks.0.motion_modules.0.proj_in.weight`, ...).
    pub fn init_zero_out(
        config: &MotionAdapterConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> brainrecon_nn::Result<(Self, Parameters)> {
        init_parameters_with(
            |vb| Self::build(vb, config, PositionTable::Computed),
            seed,
            dtype,
            device,
            zero_proj_out,
        )
    }

    fn build(vb: VarBuilder, config: &MotionAdapterConfig, table: PositionTable) -> Result<Self> {
        let (down, mid, up) = config.module_configs()?;
        let blocks = |name: &str, cfgs: &[Vec<MotionModuleConfig>]| {
            cfgs.iter()
                .enumerate()
                .map(|(i, c)| MotionModules::new(vb.pp(name).pp(i), c, table))
                .collect::<Result<Vec<_>>>()
        };
        let conv_in = match config.conv_in_channels {
            Some(c) if c > 0 => {
                let out = config.block_out_channels[0];
                Some(Conv2d::new(vb.pp("conv_in"), c, out, 3, 1, 1)?)
            }
            _ => None,
        };
        Ok(Self {
            conv_in,
            down_blocks: blocks("down_blocks", &down)?,
            mid_block: match &mid {
                Some(c) => Some(MotionModules::new(vb.pp("mid_block"), c, table)?),
                None => None,
            },
            up_blocks: blocks("up_blocks", &up)?,
            config: config.clone(),
        })
    }

    /// Loads a diffusers motion-adapter folder (`config.json` +
    /// `diffusion_pytorch_model.safetensors`, e.g. `animatediff-motion-adapter-v1-5-2`).
    pub fn from_pretrained(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = MotionAdapterConfig::from_file(&dir.join("config.json"))?;
        let file = dir.join(WEIGHTS_FILE);
        let vb = nn::mmaped_var_builder(std::slice::from_ref(&file), dtype, device)?;
        Self::new(vb, &config).map_err(|e| e.in_file(&file))
    }

    /// Every module with its diffusers prefix (`down_blocks.0.motion_modules.0`, ...).
    pub fn modules(&self) -> Vec<(String, &AnimateDiffTransformer3D)> {
        let down = self.down_blocks.iter().enumerate();
        let up = self.up_blocks.iter().enumerate();
        let blocks: Vec<(String, &MotionModules)> = down
            .map(|(i, b)| (format!("down_blocks.{i}"), b))
            .chain(self.mid_block.iter().map(|b| ("mid_block".to_string(), b)))
            .chain(up.map(|(i, b)| (format!("up_blocks.{i}"), b)))
            .collect();
        blocks
            .into_iter()
            .flat_map(|(prefix, b)| {
                b.motion_modules
                    .iter()
                    .enumerate()
                    .map(move |(m, module)| (format!("{prefix}.motion_modules.{m}"), module))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints: every tensor used; original AnimateDiff naming
// ---------------------------------------------------------------------------------------------

/// The names of the parameters `build` reads (built once over zeros, see
/// [`record_parameters`]).
pub(crate) fn names_read<M>(
    build: impl Fn(VarBuilder<'static>) -> Result<M>,
    device: &Device,
) -> Result<std::collections::HashSet<String>> {
    let recorded = record_parameters(build, DType::F32, device)
        .map_err(|e| Error::InvalidConfig(format!("cannot list the model's parameters: {e}")))?;
    Ok(recorded.into_iter().map(|(name, _)| name).collect())
}

/// An error when `file` holds tensors that the model does not read: a checkpoint that does not
/// fit its config must not load half-used.
pub(crate) fn check_all_used(
    file: &Path,
    stored: impl IntoIterator<Item = String>,
    read: &std::collections::HashSet<String>,
) -> Result<()> {
    let mut unused: Vec<String> = stored.into_iter().filter(|n| !read.contains(n)).collect();
    if unused.is_empty() {
        return Ok(());
    }
    unused.sort();
    let shown: Vec<&str> = unused.iter().take(5).map(String::as_str).collect();
    Err(Error::InvalidConfig(format!(
        "{} tensor(s) of the checkpoint are not used by the model its config describes \
         (e.g. {}): the checkpoint and the config (or the U-Net it is put in) do not match",
        unused.len(),
        shown.join(", ")
    ))
    .in_file(file))
}

/// The tensor names stored in a safetensors file.
pub(crate) fn safetensors_names(file: &Path) -> Result<Vec<String>> {
    let weights = brainrecon_nn::weights::Weights::from_files(
        std::slice::from_ref(&file.to_path_buf()),
        DType::F32,
        &Device::Cpu,
    )
    .map_err(|e| Error::InvalidConfig(e.to_string()).in_file(file))?;
    Ok(weights.names())
}

/// The diffusers name of a tensor of an original AnimateDiff motion-module checkpoint
/// (guoyww's `mm_sd_v14.ckpt`, `mm_sd_v15.ckpt`, `mm_sd_v15_v2.ckpt`, ...), by the rules of
/// diffusers' `scripts/convert_animatediff_motion_module_to_diffusers.py`, applied per
/// dot-separated name segment:
///
/// | original                         | diffusers         |
/// |----------------------------------|-------------------|
/// | `temporal_transformer.`          | (dropped)         |
/// | `attention_blocks.0` / `.1`      | `attn1` / `attn2` |
/// | `norms.0` / `norms.1`            | `norm1` / `norm2` |
/// | `ff_norm`                        | `norm3`           |
/// | `attention_blocks.A.pos_encoder` | `pos_embed`       |
///
/// The last row differs from diffusers' script, which drops the tables (they are buffers equal
/// to the formula): the original keeps one table per attention, diffusers one per transformer
/// block, so both of a block's tables map to its `pos_embed.pe` (the loader checks they are
/// equal). `None` for names outside the motion modules.
pub fn original_motion_name(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('.').collect();
    if !parts.contains(&"motion_modules") {
        return None;
    }
    let mut out: Vec<&str> = Vec::with_capacity(parts.len());
    let mut i = 0;
    while i < parts.len() {
        let next = parts.get(i + 1).copied();
        let step = match (parts[i], next) {
            ("temporal_transformer", _) => 1,
            ("attention_blocks", Some(_)) if parts.get(i + 2) == Some(&"pos_encoder") => {
                out.push("pos_embed");
                3
            }
            ("attention_blocks", Some("0")) | ("attention_blocks", Some("1")) => {
                out.push(if next == Some("0") { "attn1" } else { "attn2" });
                2
            }
            ("norms", Some("0")) | ("norms", Some("1")) => {
                out.push(if next == Some("0") { "norm1" } else { "norm2" });
                2
            }
            ("ff_norm", _) => {
                out.push("norm3");
                1
            }
            (part, _) => {
                out.push(part);
                1
            }
        };
        i += step;
    }
    Some(out.join("."))
}

/// Reads the tensors of an original checkpoint: `.safetensors`, or a PyTorch pickle (`.ckpt`,
/// `.pt`, `.pth`, `.bin`) through candle's pickle reader, which only reads tensors (it runs
/// no code), at the top level or under `state_dict`.
fn read_original_tensors(path: &Path, device: &Device) -> Result<Vec<(String, Tensor)>> {
    if !path.is_file() {
        return Err(Error::ReadFile {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let lower = path.to_string_lossy().to_lowercase();
    let in_file = |e: candle_core::Error| Error::Tensor(e).in_file(path);
    if lower.ends_with(".safetensors") {
        let map = candle_core::safetensors::load(path, device).map_err(in_file)?;
        // In name order, as the other formats come: duplicates resolve and errors read the
        // same on every run.
        let mut tensors: Vec<_> = map.into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        return Ok(tensors);
    }
    if ![".ckpt", ".pt", ".pth", ".bin"]
        .iter()
        .any(|ext| lower.ends_with(ext))
    {
        return Err(Error::InvalidConfig(
            "expected a .safetensors file or a PyTorch checkpoint (.ckpt, .pt, .pth, .bin)".into(),
        )
        .in_file(path));
    }
    let mut tensors = candle_core::pickle::read_all_with_key(path, None).map_err(in_file)?;
    if !tensors.iter().any(|(n, _)| n.contains("motion_modules")) {
        if let Ok(nested) = candle_core::pickle::read_all_with_key(path, Some("state_dict")) {
            tensors = nested;
        }
    }
    let device_tensors = tensors
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_device(device)?)))
        .collect::<candle_core::Result<Vec<_>>>()
        .map_err(in_file)?;
    Ok(device_tensors)
}

/// Renames an original checkpoint's tensors to diffusers names; a name outside the motion
/// modules, or two positional tables of one block that differ, is an error.
fn rename_original(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<HashMap<String, Tensor>> {
    let mut renamed: HashMap<String, Tensor> = HashMap::new();
    let mut foreign = Vec::new();
    for (name, tensor) in tensors {
        let Some(new) = original_motion_name(&name) else {
            foreign.push(name);
            continue;
        };
        if let Some(prev) = renamed.get(&new) {
            let same = prev.dims() == tensor.dims()
                && (prev.to_dtype(DType::F32)? - tensor.to_dtype(DType::F32)?)?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f32>()?
                    == 0.0;
            if !same {
                return Err(Error::InvalidConfig(format!(
                    "`{name}` differs from the other tensor that maps to `{new}`"
                ))
                .in_file(path));
            }
            continue;
        }
        renamed.insert(new, tensor);
    }
    if !foreign.is_empty() {
        foreign.sort();
        return Err(Error::InvalidConfig(format!(
            "{} tensor(s) are not motion-module tensors of an AnimateDiff checkpoint (e.g. `{}`)",
            foreign.len(),
            foreign[0]
        ))
        .in_file(path));
    }
    Ok(renamed)
}

/// Per module index, the number of `transformer_blocks` of each module under `prefix`
/// (`down_blocks.0.motion_modules.`).
fn module_depths(names: &[&String], prefix: &str) -> Vec<usize> {
    let mut depths: std::collections::BTreeMap<usize, usize> = Default::default();
    for name in names {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let mut parts = rest.split('.');
        let Some(Ok(module)) = parts.next().map(str::parse::<usize>) else {
            continue;
        };
        let depth = depths.entry(module).or_insert(0);
        if parts.next() == Some("transformer_blocks") {
            if let Some(Ok(k)) = parts.next().map(str::parse::<usize>) {
                *depth = (*depth).max(k + 1);
            }
        }
    }
    depths.into_values().collect()
}

fn one_or_many(depths: &[usize]) -> OneOrMany {
    match depths {
        [first, rest @ ..] if rest.iter().all(|d| d == first) => OneOrMany::One(*first),
        _ => OneOrMany::Many(depths.to_vec()),
    }
}

/// The adapter layout an original checkpoint's tensors imply: blocks and their channels,
/// modules per block, transformer depths, the mid block, and the positional tables' length.
/// Attention heads and norm groups are not visible in the tensors and come from `base`
/// (diffusers' defaults, 8 heads and 32 groups, are AnimateDiff's).
fn infer_original_config(
    tensors: &HashMap<String, Tensor>,
    base: &MotionAdapterConfig,
) -> Result<MotionAdapterConfig> {
    let names: Vec<&String> = tensors.keys().collect();
    let mut block_out_channels = Vec::new();
    let mut layers = Vec::new();
    let mut depths = Vec::new();
    loop {
        let i = block_out_channels.len();
        let per_module = module_depths(&names, &format!("down_blocks.{i}.motion_modules."));
        if per_module.is_empty() {
            break;
        }
        let proj_in = format!("down_blocks.{i}.motion_modules.0.proj_in.weight");
        let channels = tensors
            .get(&proj_in)
            .ok_or_else(|| Error::MissingWeight {
                name: proj_in.clone(),
            })?
            .dim(1)?;
        block_out_channels.push(channels);
        layers.push(per_module.len());
        depths.push(one_or_many(&per_module));
    }
    if block_out_channels.is_empty() {
        return Err(Error::InvalidConfig(
            "no `down_blocks.0.motion_modules.*` tensors: not a motion-module checkpoint".into(),
        ));
    }
    let mid = module_depths(&names, "mid_block.motion_modules.");
    // Every positional table has the same length in a checkpoint that loads; the first by name
    // decides, so a mismatch fails the same way on every run.
    let max_len = tensors
        .iter()
        .filter(|(n, _)| n.ends_with("pos_embed.pe"))
        .min_by(|a, b| a.0.cmp(b.0))
        .map(|(_, t)| t.dim(1))
        .transpose()?;
    Ok(MotionAdapterConfig {
        block_out_channels,
        motion_layers_per_block: OneOrMany::Many(layers),
        motion_transformer_layers_per_block: LayersPerBlock::Many(depths),
        motion_mid_block_layers_per_block: mid.len().max(1),
        motion_transformer_layers_per_mid_block: if mid.is_empty() {
            OneOrMany::One(1)
        } else {
            one_or_many(&mid)
        },
        use_motion_mid_block: !mid.is_empty(),
        motion_max_seq_length: max_len.unwrap_or(base.motion_max_seq_length),
        conv_in_channels: None,
        ..base.clone()
    })
}

impl MotionAdapter {
    /// Loads an original AnimateDiff motion-module checkpoint (`mm_sd_v15_v2.ckpt` or a
    /// `.safetensors` of it) through [`original_motion_name`]'s renaming. The layout is read
    /// from the tensors; heads and norm groups come from `base` (pass
    /// `MotionAdapterConfig::default()`-like diffusers defaults for guoyww's checkpoints).
    /// Returns the adapter and the config it was built with. Every tensor must be used.
    pub fn from_original(
        path: &Path,
        base: &MotionAdapterConfig,
        dtype: DType,
        device: &Device,
    ) -> Result<(Self, MotionAdapterConfig)> {
        let tensors = read_original_tensors(path, device)?;
        let renamed = rename_original(path, tensors)?;
        let config = infer_original_config(&renamed, base).map_err(|e| e.in_file(path))?;
        config.module_configs().map_err(|e| e.in_file(path))?;
        let read = names_read(|vb| MotionAdapter::new(vb, &config), device)?;
        check_all_used(path, renamed.keys().cloned(), &read)?;
        let vb = nn::tensors_var_builder(renamed, dtype, device);
        let adapter = Self::new(vb, &config).map_err(|e| e.in_file(path))?;
        Ok((adapter, config))
    }
}

impl Default for MotionAdapterConfig {
    /// diffusers' `MotionAdapter()` defaults: SD 1.5's blocks, 8 heads, 32 groups, 32 frames.
    fn default() -> Self {
        Self {
            block_out_channels: default_block_out_channels(),
            motion_layers_per_block: default_layers_per_block(),
            motion_transformer_layers_per_block: default_one_layer(),
            motion_mid_block_layers_per_block: 1,
            motion_transformer_layers_per_mid_block: default_mid_layers(),
            motion_num_attention_heads: default_heads(),
            motion_norm_num_groups: default_groups(),
            motion_max_seq_length: default_max_seq_length(),
            use_motion_mid_block: true,
            conv_in_channels: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brainrecon_nn::rng::{NoiseSource, SeededNoise};

    fn config() -> MotionModuleConfig {
        MotionModuleConfig::for_adapter(16, 2, 1, 4, 8)
    }

    #[test]
    fn sinusoidal_table_follows_the_formula() {
        let t = sinusoidal_table(5, 6, &Device::Cpu).unwrap();
        let v = t.to_vec2::<f32>().unwrap();
        assert_eq!(v[0], vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        for (p, row) in v.iter().enumerate() {
            for i in 0..3 {
                let w = (-(2.0 * i as f64) * 10000f64.ln() / 6.0).exp();
                let a = p as f64 * w;
                assert!((row[2 * i] as f64 - a.sin()).abs() < 1e-6);
                assert!((row[2 * i + 1] as f64 - a.cos()).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn zero_rule_touches_proj_out_only() {
        let d = ParamInit::Uniform { bound: 0.1 };
        for zero in [
            "proj_out.weight",
            "proj_out.bias",
            "mid_block.motion_modules.0.proj_out.bias",
        ] {
            assert_eq!(
                zero_proj_out(zero, &[1], d),
                ParamInit::Constant(0.0),
                "{zero}"
            );
        }
        for keep in [
            "proj_in.weight",
            "transformer_blocks.0.attn1.to_out.0.weight",
            "x_proj_out.weight",
        ] {
            assert_eq!(zero_proj_out(keep, &[1], d), d, "{keep}");
        }
    }

    #[test]
    fn invalid_configs_are_errors() {
        let mut c = config();
        c.norm_num_groups = 5;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("norm_num_groups 5"));
        let mut c = config();
        c.activation_fn = "gelu".into();
        assert!(c.validate().unwrap_err().to_string().contains("\"gelu\""));
        let mut c = config();
        (c.num_attention_heads, c.attention_head_dim) = (1, 3);
        assert!(c.validate().unwrap_err().to_string().contains("even width"));
        let mut c = config();
        c.positional_embeddings = None;
        (c.num_attention_heads, c.attention_head_dim) = (1, 3);
        c.validate().unwrap();
    }

    /// diffusers' defaults (the SD 1.5 adapters' layout): two modules per down block, three
    /// per up block, one in the mid block, head dims channels / 8.
    #[test]
    fn default_adapter_layout() {
        let cfg: MotionAdapterConfig = serde_json::from_str("{}").unwrap();
        let (down, mid, up) = cfg.module_configs().unwrap();
        let count = |b: &[Vec<MotionModuleConfig>]| b.iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(count(&down), vec![2, 2, 2, 2]);
        assert_eq!(count(&up), vec![3, 3, 3, 3]);
        assert_eq!(mid.as_ref().map(Vec::len), Some(1));
        assert_eq!(down[0][0].attention_head_dim, 40);
        assert_eq!(up[0][0].in_channels, 1280);
        assert_eq!(up[3][2].in_channels, 320);
        assert_eq!(down[1][1].max_seq_length, 32);
    }

    /// A fresh module is the identity, and training can start: `proj_out` gets a gradient.
    #[test]
    fn fresh_module_is_the_identity_and_trains_proj_out() {
        let (m, params) =
            AnimateDiffTransformer3D::init_zero_out(&config(), 3, DType::F32, &Device::Cpu)
                .unwrap();
        let x = SeededNoise::new(1)
            .gaussian(&[2 * 6, 16, 2, 3], &Device::Cpu, DType::F32)
            .unwrap();
        let y = m.forward(&x, 6).unwrap();
        let diff = (&y - &x).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let w = params.get("proj_out.weight").unwrap();
        let g = grads
            .get(w.as_tensor())
            .expect("proj_out.weight has a gradient");
        assert!(
            g.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0
        );
        let too_long = Tensor::zeros((9, 16, 2, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(matches!(
            m.forward(&too_long, 9),
            Err(Error::InvalidInput {
                name: "num_frames",
                ..
            })
        ));
    }
}
