//! `UNet2DConditionModel` for the Stable Diffusion 1.x and 2.x (base, turbo) families, with
//! diffusers' configuration and parameter names, one timestep per sample, differentiable end
//! to end (so cross-attention `attn2.to_k` / `attn2.to_v` can be fine-tuned).
//!
//! Shared diffusers blocks (`ResnetBlock2D`, `Downsample2D`, `Upsample2D`) live here too and
//! are reused by the VAE.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::motion::AnimateDiffTransformer3D;
use brainrecon_nn::layers::{self as nn, Attention, Conv2d, GeGlu, GroupNorm, LayerNorm, Linear};
use brainrecon_nn::{Error, Result};

/// How the spatial self-attention (`attn1`) of the transformer blocks sees the frames of a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpatialAttention {
    /// Each frame attends to its own pixels: the image model (and AnimateDiff).
    #[default]
    PerFrame,
    /// MinD-Video's sparse-causal attention (`SparseCausalAttention` of its
    /// `models/attention.py`): the queries of frame t attend to the keys and values of frames
    /// max(t − 2, 0) and max(t − 1, 0), concatenated; frame 0 thus attends to itself, frame 1
    /// to frame 0 only, and no frame to a later one.
    SparseCausal,
}

/// How the rows of a batch are grouped into clips: `num_frames` consecutive rows per clip (1
/// for independent images).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLayout {
    /// Consecutive rows per clip (1: independent images).
    pub num_frames: usize,
    /// How `attn1` sees the frames of a clip.
    pub spatial_attention: SpatialAttention,
}

impl FrameLayout {
    /// Independent images: the image U-Net.
    pub const IMAGES: FrameLayout = FrameLayout {
        num_frames: 1,
        spatial_attention: SpatialAttention::PerFrame,
    };

    /// `num_frames` consecutive rows per clip, with `spatial_attention`.
    pub fn clips(num_frames: usize, spatial_attention: SpatialAttention) -> Self {
        Self {
            num_frames,
            spatial_attention,
        }
    }
}

/// An integer or a per-block list of integers, as diffusers configs allow.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value for every block.
    One(usize),
    /// One value per block.
    Many(Vec<usize>),
}

impl OneOrMany {
    /// The value for each of `n` blocks.
    pub fn per_block(&self, n: usize, field: &str) -> Result<Vec<usize>> {
        match self {
            OneOrMany::One(v) => Ok(vec![*v; n]),
            OneOrMany::Many(v) if v.len() == n => Ok(v.clone()),
            OneOrMany::Many(v) => Err(Error::InvalidConfig(format!(
                "`{field}` has {} entries for {n} blocks",
                v.len()
            ))),
        }
    }
}

/// Puts the config file in front of an [`Error::InvalidConfig`] message, keeping the variant.
pub(crate) fn name_config(e: Error, path: &Path) -> Error {
    match e {
        Error::InvalidConfig(m) => Error::InvalidConfig(format!("{}: {m}", path.display())),
        other => other.in_file(path),
    }
}

fn d_in_channels() -> usize {
    4
}
fn d_groups() -> usize {
    32
}
fn d_norm_eps() -> f64 {
    1e-5
}
fn d_true() -> bool {
    true
}
fn d_one() -> OneOrMany {
    OneOrMany::One(1)
}
fn d_padding() -> usize {
    1
}
fn d_scale() -> f64 {
    1.0
}
fn d_attention_head_dim() -> OneOrMany {
    OneOrMany::One(8)
}
fn d_mid_block() -> Option<String> {
    Some("UNetMidBlock2DCrossAttn".into())
}

/// diffusers' `unet/config.json` (the fields this implementation reads; unknown fields are
/// ignored, unsupported values of known fields are rejected by [`UNet2DConditionConfig::validate`]).
#[derive(Debug, Clone, Deserialize)]
pub struct UNet2DConditionConfig {
    /// Channels of the latent input (default 4).
    #[serde(default = "d_in_channels")]
    pub in_channels: usize,
    /// Channels of the output (default 4).
    #[serde(default = "d_in_channels")]
    pub out_channels: usize,
    /// Channels of each level, top to bottom.
    pub block_out_channels: Vec<usize>,
    /// `CrossAttnDownBlock2D` or `DownBlock2D`, per level.
    pub down_block_types: Vec<String>,
    /// `CrossAttnUpBlock2D` or `UpBlock2D`, per level from the bottom up.
    pub up_block_types: Vec<String>,
    /// Must be `UNetMidBlock2DCrossAttn` (the default).
    #[serde(default = "d_mid_block")]
    pub mid_block_type: Option<String>,
    /// Resnets per down block (an up block has one more).
    pub layers_per_block: OneOrMany,
    /// Despite its name, diffusers uses this as the number of heads when
    /// `num_attention_heads` is null (the SD 1.x/2.x configs).
    #[serde(default = "d_attention_head_dim")]
    pub attention_head_dim: OneOrMany,
    /// Attention heads per block; when null, `attention_head_dim` gives them.
    #[serde(default)]
    pub num_attention_heads: Option<OneOrMany>,
    /// Width of the cross-attention context (the text encoder's `hidden_size`).
    pub cross_attention_dim: usize,
    /// `proj_in` / `proj_out` of the transformers are linear (SD 2.x), not 1×1 convolutions.
    #[serde(default)]
    pub use_linear_projection: bool,
    /// Attention scores in f32 (SD 2.1).
    #[serde(default)]
    pub upcast_attention: bool,
    /// GroupNorm groups.
    #[serde(default = "d_groups")]
    pub norm_num_groups: usize,
    /// Epsilon of the GroupNorms (default 1e-5).
    #[serde(default = "d_norm_eps")]
    pub norm_eps: f64,
    /// Timestep features as [cos, sin] rather than [sin, cos] (default true).
    #[serde(default = "d_true")]
    pub flip_sin_to_cos: bool,
    /// Shift of the timestep frequencies' denominator (`downscale_freq_shift`, default 0).
    #[serde(default)]
    pub freq_shift: f64,
    /// Transformer blocks per `Transformer2DModel`, per block.
    #[serde(default = "d_one")]
    pub transformer_layers_per_block: OneOrMany,
    /// Side of the latent the model was trained on.
    #[serde(default)]
    pub sample_size: Option<usize>,
    /// Padding of the down-samplers' convolutions: 1 (default) or 0.
    #[serde(default = "d_padding")]
    pub downsample_padding: usize,
    /// Must be 1 (the default).
    #[serde(default = "d_scale")]
    pub mid_block_scale_factor: f64,
    /// Must be `silu` or absent.
    #[serde(default)]
    pub act_fn: Option<String>,
    /// Must be false.
    #[serde(default)]
    pub center_input_sample: bool,
    /// Must be null or false.
    #[serde(default)]
    pub only_cross_attention: serde_json::Value,
    /// Must be false.
    #[serde(default)]
    pub dual_cross_attention: bool,
    /// Must be absent.
    #[serde(default)]
    pub class_embed_type: Option<String>,
    /// Must be absent.
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    /// Must be `positional` or absent.
    #[serde(default)]
    pub time_embedding_type: Option<String>,
    /// Must be `default` or absent.
    #[serde(default)]
    pub resnet_time_scale_shift: Option<String>,
    /// Must be absent.
    #[serde(default)]
    pub time_cond_proj_dim: Option<usize>,
    /// Must be 3 or absent.
    #[serde(default)]
    pub conv_in_kernel: Option<usize>,
    /// Must be 3 or absent.
    #[serde(default)]
    pub conv_out_kernel: Option<usize>,
    /// Must be absent.
    #[serde(default)]
    pub encoder_hid_dim: Option<usize>,
    /// Must be absent.
    #[serde(default)]
    pub time_embedding_dim: Option<usize>,
    /// Must be absent.
    #[serde(default)]
    pub time_embedding_act_fn: Option<String>,
    /// Must be absent.
    #[serde(default)]
    pub timestep_post_act: Option<String>,
    /// Must be false.
    #[serde(default)]
    pub resnet_skip_time_act: bool,
    /// Must be 1 or absent.
    #[serde(default)]
    pub resnet_out_scale_factor: Option<f64>,
    /// Must be absent.
    #[serde(default)]
    pub cross_attention_norm: Option<String>,
    /// Must be `default` or absent.
    #[serde(default)]
    pub attention_type: Option<String>,
    /// Must be absent.
    #[serde(default)]
    pub num_class_embeds: Option<usize>,
}

impl UNet2DConditionConfig {
    /// Parses diffusers' `unet/config.json` and validates it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let cfg: Self = nn::read_json_config(path)?;
        cfg.validate().map_err(|e| name_config(e, path))?;
        Ok(cfg)
    }

    /// Parses a JSON string (e.g. a config embedded in code) and validates it.
    pub fn from_json_str(json: &str) -> Result<Self> {
        let cfg: Self = nn::parse_json_config(json, Path::new("<string>"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Bounds every size-like field before any tensor is built (hostile `config.json` files):
    /// zero groups/heads, huge channels or paddings would divide by zero or allocate terabytes.
    pub fn check_sizes(&self) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::*;
        let n = self.block_out_channels.len();
        list_len("block_out_channels", n, 1, 8)?;
        all_positive("block_out_channels", &self.block_out_channels, MAX_CHANNELS)?;
        positive("in_channels", self.in_channels, MAX_CHANNELS)?;
        positive("out_channels", self.out_channels, MAX_CHANNELS)?;
        positive(
            "cross_attention_dim",
            self.cross_attention_dim,
            MAX_CHANNELS,
        )?;
        groups_divide(
            "norm_num_groups",
            self.norm_num_groups,
            &self.block_out_channels,
        )?;
        epsilon("norm_eps", self.norm_eps)?;
        finite_in("freq_shift", self.freq_shift, -1e4, 1e4)?;
        // diffusers pads its stride-2 3x3 downsamplers by 1 (U-Net) or 0 (VAE); more shifts
        // the skip connections' sizes apart.
        in_range("downsample_padding", self.downsample_padding, 0, 1)?;
        if let Some(s) = self.sample_size {
            positive("sample_size", s, MAX_IMAGE_SIDE)?;
        }
        let per_block = |v: &OneOrMany, field: &str, max: usize| {
            let v = v.per_block(n, field).map_err(|e| e.to_string())?;
            all_positive(field, &v, max)
        };
        per_block(&self.layers_per_block, "layers_per_block", MAX_LAYERS)?;
        per_block(
            &self.transformer_layers_per_block,
            "transformer_layers_per_block",
            MAX_LAYERS,
        )?;
        per_block(&self.attention_head_dim, "attention_head_dim", MAX_CHANNELS)?;
        if let Some(h) = &self.num_attention_heads {
            per_block(h, "num_attention_heads", MAX_LAYERS)?;
        }
        for (field, v) in [
            ("mid_block_scale_factor", Some(self.mid_block_scale_factor)),
            ("resnet_out_scale_factor", self.resnet_out_scale_factor),
        ] {
            if let Some(v) = v {
                finite_in(field, v, -1e6, 1e6)?;
            }
        }
        Ok(())
    }

    /// Rejects options of `UNet2DConditionModel` that this implementation does not support.
    pub fn validate(&self) -> Result<()> {
        let n = self.block_out_channels.len();
        let bad = |m: String| Err(Error::InvalidConfig(m));
        self.check_sizes().map_err(Error::InvalidConfig)?;
        if self.down_block_types.len() != n || self.up_block_types.len() != n {
            return bad(format!(
                "{} down and {} up block types for {n} block_out_channels",
                self.down_block_types.len(),
                self.up_block_types.len()
            ));
        }
        for t in &self.down_block_types {
            if t != "CrossAttnDownBlock2D" && t != "DownBlock2D" {
                return bad(format!("unsupported down block type `{t}`"));
            }
        }
        for t in &self.up_block_types {
            if t != "CrossAttnUpBlock2D" && t != "UpBlock2D" {
                return bad(format!("unsupported up block type `{t}`"));
            }
        }
        match self.mid_block_type.as_deref() {
            Some("UNetMidBlock2DCrossAttn") => {}
            other => return bad(format!("unsupported mid block type {other:?}")),
        }
        self.heads()?;
        let unsupported = [
            ("class_embed_type", self.class_embed_type.is_some()),
            ("addition_embed_type", self.addition_embed_type.is_some()),
            ("time_cond_proj_dim", self.time_cond_proj_dim.is_some()),
            ("encoder_hid_dim", self.encoder_hid_dim.is_some()),
            ("dual_cross_attention", self.dual_cross_attention),
            ("center_input_sample", self.center_input_sample),
            (
                "only_cross_attention",
                !matches!(
                    &self.only_cross_attention,
                    serde_json::Value::Null | serde_json::Value::Bool(false)
                ),
            ),
            (
                "time_embedding_type",
                !matches!(
                    self.time_embedding_type.as_deref(),
                    None | Some("positional")
                ),
            ),
            (
                "resnet_time_scale_shift",
                !matches!(
                    self.resnet_time_scale_shift.as_deref(),
                    None | Some("default")
                ),
            ),
            (
                "act_fn",
                !matches!(self.act_fn.as_deref(), None | Some("silu")),
            ),
            (
                "conv_in_kernel",
                !matches!(self.conv_in_kernel, None | Some(3)),
            ),
            (
                "conv_out_kernel",
                !matches!(self.conv_out_kernel, None | Some(3)),
            ),
            ("mid_block_scale_factor", self.mid_block_scale_factor != 1.0),
            ("time_embedding_dim", self.time_embedding_dim.is_some()),
            (
                "time_embedding_act_fn",
                self.time_embedding_act_fn.is_some(),
            ),
            ("timestep_post_act", self.timestep_post_act.is_some()),
            ("resnet_skip_time_act", self.resnet_skip_time_act),
            (
                "resnet_out_scale_factor",
                !matches!(self.resnet_out_scale_factor, None | Some(1.0)),
            ),
            ("cross_attention_norm", self.cross_attention_norm.is_some()),
            (
                "attention_type",
                !matches!(self.attention_type.as_deref(), None | Some("default")),
            ),
            ("num_class_embeds", self.num_class_embeds.is_some()),
        ];
        for (field, is_bad) in unsupported {
            if is_bad {
                return bad(format!("unsupported value of `{field}`"));
            }
        }
        Ok(())
    }

    /// Number of attention heads per down block (diffusers: `num_attention_heads`, falling
    /// back to `attention_head_dim`).
    pub fn heads(&self) -> Result<Vec<usize>> {
        let n = self.block_out_channels.len();
        let (field, heads) = match &self.num_attention_heads {
            Some(h) => (
                "num_attention_heads",
                h.per_block(n, "num_attention_heads")?,
            ),
            None => (
                "attention_head_dim",
                self.attention_head_dim.per_block(n, "attention_head_dim")?,
            ),
        };
        for (i, (c, h)) in self.block_out_channels.iter().zip(&heads).enumerate() {
            brainrecon_nn::config_bounds::heads_divide(&format!("{field}[{i}] (heads)"), *h, *c)
                .map_err(Error::InvalidConfig)?;
        }
        Ok(heads)
    }

    /// Total down-sampling factor of the U-Net (latent sizes must be multiples of it).
    pub fn downsampling_factor(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}

/// diffusers' `ResnetBlock2D` (default time-embedding norm, SiLU, output scale 1).
#[derive(Debug, Clone)]
pub struct ResnetBlock2D {
    /// GroupNorm (then SiLU) before `conv1`.
    pub norm1: GroupNorm,
    /// 3×3 convolution C_in → C_out.
    pub conv1: Conv2d,
    /// Linear T → C_out of the time embedding (after SiLU), added after `conv1`; `None` without a
    /// time embedding (VAE).
    pub time_emb_proj: Option<Linear>,
    /// GroupNorm (then SiLU) before `conv2`.
    pub norm2: GroupNorm,
    /// 3×3 convolution C_out → C_out.
    pub conv2: Conv2d,
    /// 1×1 convolution of the skip connection when C_in ≠ C_out.
    pub conv_shortcut: Option<Conv2d>,
}

impl ResnetBlock2D {
    /// Reads the block under `vb`: `in_channels` → `out_channels`, a `temb_channels`-wide time
    /// projection when given, GroupNorms of `groups` groups and `eps`; errors on a tensor `vb`
    /// lacks or misshapes.
    pub fn new(
        vb: VarBuilder,
        in_channels: usize,
        out_channels: usize,
        temb_channels: Option<usize>,
        groups: usize,
        eps: f64,
    ) -> Result<Self> {
        Ok(Self {
            norm1: GroupNorm::new(vb.pp("norm1"), groups, in_channels, eps)?,
            conv1: Conv2d::new(vb.pp("conv1"), in_channels, out_channels, 3, 1, 1)?,
            time_emb_proj: match temb_channels {
                Some(t) => Some(Linear::new(vb.pp("time_emb_proj"), t, out_channels, true)?),
                None => None,
            },
            norm2: GroupNorm::new(vb.pp("norm2"), groups, out_channels, eps)?,
            conv2: Conv2d::new(vb.pp("conv2"), out_channels, out_channels, 3, 1, 1)?,
            conv_shortcut: if in_channels != out_channels {
                Some(Conv2d::new(
                    vb.pp("conv_shortcut"),
                    in_channels,
                    out_channels,
                    1,
                    1,
                    0,
                )?)
            } else {
                None
            },
        })
    }

    /// `x` [B, C_in, H, W]; `temb` [B, T] (already the time embedding, before SiLU).
    pub fn forward(&self, x: &Tensor, temb: Option<&Tensor>) -> Result<Tensor> {
        let h = self.norm1.forward_silu(x)?;
        let mut h = self.conv1.forward(&h)?;
        if let (Some(proj), Some(t)) = (&self.time_emb_proj, temb) {
            let t = proj.forward(&nn::silu(t)?)?;
            let (b, c) = t.dims2()?;
            h = h.broadcast_add(&t.reshape((b, c, 1, 1))?)?;
        }
        let h = self.norm2.forward_silu(&h)?;
        let h = self.conv2.forward(&h)?;
        let skip = match &self.conv_shortcut {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        Ok((skip + h)?)
    }
}

/// diffusers' `Downsample2D` with a convolution (`conv`, stride 2). `padding` 1 pads
/// symmetrically (U-Net); 0 pads right/bottom by one (VAE encoder), as diffusers does.
#[derive(Debug, Clone)]
pub struct Downsample2D {
    /// 3×3 convolution, stride 2.
    pub conv: Conv2d,
    /// Pad right and bottom by one before the unpadded convolution (VAE), instead of padding 1 on
    /// every side.
    pub asymmetric_pad: bool,
}

impl Downsample2D {
    /// Reads `conv` under `vb`; `padding` 1 (U-Net) or 0 (VAE encoder); errors on a tensor `vb`
    /// lacks or misshapes.
    pub fn new(vb: VarBuilder, channels: usize, padding: usize) -> Result<Self> {
        Ok(Self {
            conv: Conv2d::new(vb.pp("conv"), channels, channels, 3, 2, padding)?,
            asymmetric_pad: padding == 0,
        })
    }

    /// [B, C, H, W] → [B, C, H/2, W/2].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.asymmetric_pad {
            let x = x.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?;
            self.conv.forward(&x)
        } else {
            self.conv.forward(x)
        }
    }
}

/// diffusers' `Upsample2D`: nearest 2x then a 3x3 `conv`.
#[derive(Debug, Clone)]
pub struct Upsample2D {
    /// 3×3 convolution after the nearest-neighbour 2× upsampling.
    pub conv: Conv2d,
}

impl Upsample2D {
    /// Reads `conv` under `vb`; errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Self {
            conv: Conv2d::new(vb.pp("conv"), channels, channels, 3, 1, 1)?,
        })
    }

    /// [B, C, H, W] → [B, C, 2H, 2W].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(&nn::upsample_nearest_2x(x)?)
    }
}

/// `ff` of a `BasicTransformerBlock`: `net.0` GEGLU, `net.2` linear.
#[derive(Debug, Clone)]
pub struct FeedForward {
    /// `net.0`: GEGLU, dim → 2·inner, gated to inner.
    pub geglu: GeGlu,
    /// `net.2`: Linear inner → dim.
    pub out: Linear,
}

impl FeedForward {
    /// Reads `net.0` and `net.2` under `vb`, inner width `dim · mult`; errors on a tensor `vb`
    /// lacks or misshapes.
    pub fn new(vb: VarBuilder, dim: usize, mult: usize) -> Result<Self> {
        let inner = dim * mult;
        Ok(Self {
            geglu: GeGlu::new(vb.pp("net").pp("0"), dim, inner)?,
            out: Linear::new(vb.pp("net").pp("2"), inner, dim, true)?,
        })
    }

    /// [..., dim] → [..., dim].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.out.forward(&self.geglu.forward(x)?)
    }
}

/// diffusers' `BasicTransformerBlock` (layer norms, self-attention `attn1`, cross-attention
/// `attn2`, GEGLU feed-forward `ff`).
#[derive(Debug, Clone)]
pub struct BasicTransformerBlock {
    /// LayerNorm before `attn1`.
    pub norm1: LayerNorm,
    /// `attn1`: self-attention.
    pub attn1: Attention,
    /// LayerNorm before `attn2`.
    pub norm2: LayerNorm,
    /// `attn2`: cross-attention to the context.
    pub attn2: Attention,
    /// LayerNorm before the feed-forward.
    pub norm3: LayerNorm,
    /// `ff`: the GEGLU feed-forward (4× width).
    pub ff: FeedForward,
}

impl BasicTransformerBlock {
    /// Reads the block under `vb`: width `dim`, `heads` of `dim_head`, context width
    /// `cross_attention_dim`, f32 scores with `upcast_attention`; errors on a tensor `vb` lacks or
    /// misshapes.
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        heads: usize,
        dim_head: usize,
        cross_attention_dim: usize,
        upcast_attention: bool,
    ) -> Result<Self> {
        Ok(Self {
            norm1: LayerNorm::new(vb.pp("norm1"), dim, 1e-5, true)?,
            attn1: Attention::new(
                vb.pp("attn1"),
                dim,
                None,
                heads,
                dim_head,
                false,
                upcast_attention,
            )?,
            norm2: LayerNorm::new(vb.pp("norm2"), dim, 1e-5, true)?,
            attn2: Attention::new(
                vb.pp("attn2"),
                dim,
                Some(cross_attention_dim),
                heads,
                dim_head,
                false,
                upcast_attention,
            )?,
            norm3: LayerNorm::new(vb.pp("norm3"), dim, 1e-5, true)?,
            ff: FeedForward::new(vb.pp("ff"), dim, 4)?,
        })
    }

    /// `x` [B, L, dim], `context` [B, Lc, D] → [B, L, dim] (independent images).
    pub fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        self.forward_frames(x, context, &FrameLayout::IMAGES)
    }

    /// `x` [b·f, L, dim] with the frames of each clip consecutive, `context` [b·f, Lc, D].
    pub fn forward_frames(
        &self,
        x: &Tensor,
        context: &Tensor,
        layout: &FrameLayout,
    ) -> Result<Tensor> {
        let n = self.norm1.forward(x)?;
        let attended = match layout.spatial_attention {
            SpatialAttention::PerFrame => self.attn1.forward(&n, None)?,
            SpatialAttention::SparseCausal => {
                sparse_causal_attention(&self.attn1, &n, layout.num_frames)?
            }
        };
        let x = (attended + x)?;
        let x = (self
            .attn2
            .forward(&self.norm2.forward(&x)?, Some(context))?
            + x)?;
        Ok((self.ff.forward(&self.norm3.forward(&x)?)? + x)?)
    }
}

/// MinD-Video's sparse-causal self-attention on `x` [b·f, L, dim]: the queries of frame t, the
/// keys and values of frames max(t − 2, 0) and max(t − 1, 0) side by side ([b·f, 2L, dim]).
fn sparse_causal_attention(attn: &Attention, x: &Tensor, num_frames: usize) -> Result<Tensor> {
    let (bf, l, _) = x.dims3()?;
    if num_frames == 0 || bf % num_frames != 0 {
        return Err(Error::InvalidInput {
            name: "num_frames",
            msg: format!("{num_frames} frames do not divide the {bf} rows of the input"),
        });
    }
    let b = bf / num_frames;
    let q = attn.to_q.forward(x)?;
    let index = |back: usize| -> Result<Tensor> {
        let ids: Vec<u32> = (0..num_frames)
            .map(|t| t.saturating_sub(back) as u32)
            .collect();
        Ok(Tensor::new(ids.as_slice(), x.device())?)
    };
    let (two_back, one_back) = (index(2)?, index(1)?);
    let gather = |t: Tensor| -> Result<Tensor> {
        let inner = t.dim(2)?;
        let t = t.reshape((b, num_frames, l, inner))?;
        let pair = Tensor::cat(
            &[t.index_select(&two_back, 1)?, t.index_select(&one_back, 1)?],
            2,
        )?;
        Ok(pair.reshape((bf, 2 * l, inner))?)
    };
    let k = gather(attn.to_k.forward(x)?)?;
    let v = gather(attn.to_v.forward(x)?)?;
    let o = nn::multi_head_attention(&q, &k, &v, attn.heads, false, None, attn.upcast_attention)?;
    attn.to_out.forward(&o)
}

/// `proj_in` / `proj_out` of a `Transformer2DModel`: 1x1 convolution (SD 1.x) or linear
/// (SD 2.x, `use_linear_projection`).
#[derive(Debug, Clone)]
pub enum Projection {
    /// 1×1 convolution (SD 1.x).
    Conv(Conv2d),
    /// Linear map over the pixels' channels (SD 2.x).
    Linear(Linear),
}

/// diffusers' `Transformer2DModel` with continuous inputs (named `attentions.N` in blocks).
#[derive(Debug, Clone)]
pub struct Transformer2DModel {
    /// GroupNorm of the input (eps 1e-6).
    pub norm: GroupNorm,
    /// `proj_in`: C → inner.
    pub proj_in: Projection,
    /// `transformer_blocks`.
    pub transformer_blocks: Vec<BasicTransformerBlock>,
    /// `proj_out`: inner → C.
    pub proj_out: Projection,
}

impl Transformer2DModel {
    /// Reads the model under `vb`: `channels` wide, `heads` heads of `channels / heads`,
    /// `num_layers` blocks; errors on a tensor `vb` lacks or misshapes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vb: VarBuilder,
        channels: usize,
        heads: usize,
        num_layers: usize,
        cross_attention_dim: usize,
        groups: usize,
        use_linear_projection: bool,
        upcast_attention: bool,
    ) -> Result<Self> {
        let dim_head = channels / heads;
        let inner = heads * dim_head;
        let (proj_in, proj_out) = if use_linear_projection {
            (
                Projection::Linear(Linear::new(vb.pp("proj_in"), channels, inner, true)?),
                Projection::Linear(Linear::new(vb.pp("proj_out"), inner, channels, true)?),
            )
        } else {
            (
                Projection::Conv(Conv2d::new(vb.pp("proj_in"), channels, inner, 1, 1, 0)?),
                Projection::Conv(Conv2d::new(vb.pp("proj_out"), inner, channels, 1, 1, 0)?),
            )
        };
        let transformer_blocks = (0..num_layers)
            .map(|i| {
                BasicTransformerBlock::new(
                    vb.pp("transformer_blocks").pp(i),
                    inner,
                    heads,
                    dim_head,
                    cross_attention_dim,
                    upcast_attention,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            norm: GroupNorm::new(vb.pp("norm"), groups, channels, 1e-6)?,
            proj_in,
            transformer_blocks,
            proj_out,
        })
    }

    /// `x` [B, C, H, W], `context` [B, L, D] → [B, C, H, W].
    pub fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        self.forward_frames(x, context, &FrameLayout::IMAGES)
    }

    /// [`Transformer2DModel::forward`] on the frames of clips (`layout`).
    pub fn forward_frames(
        &self,
        x: &Tensor,
        context: &Tensor,
        layout: &FrameLayout,
    ) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let residual = x;
        let x = self.norm.forward(x)?;
        let to_seq = |t: &Tensor| -> Result<Tensor> {
            let c = t.dim(1)?;
            Ok(t.permute((0, 2, 3, 1))?.reshape((b, h * w, c))?)
        };
        let mut x = match &self.proj_in {
            Projection::Conv(c) => to_seq(&c.forward(&x)?)?,
            Projection::Linear(l) => l.forward(&to_seq(&x)?)?,
        };
        for blk in &self.transformer_blocks {
            x = blk.forward_frames(&x, context, layout)?;
        }
        let to_img = |t: &Tensor| -> Result<Tensor> {
            let c = t.dim(2)?;
            Ok(t.reshape((b, h, w, c))?
                .permute((0, 3, 1, 2))?
                .contiguous()?)
        };
        let x = match &self.proj_out {
            Projection::Conv(c) => c.forward(&to_img(&x)?)?,
            Projection::Linear(l) => to_img(&l.forward(&x)?)?,
        };
        Ok((x + residual)?)
    }
}

/// `CrossAttnDownBlock2D` (with `attentions`) or `DownBlock2D` (without); with
/// `motion_modules`, diffusers' `CrossAttnDownBlockMotion` / `DownBlockMotion` (a temporal
/// transformer after each resnet + attention pair).
#[derive(Debug, Clone)]
pub struct DownBlock2D {
    /// `resnets.N`.
    pub resnets: Vec<ResnetBlock2D>,
    /// `attentions.N`, one per resnet (empty in `DownBlock2D`).
    pub attentions: Vec<Transformer2DModel>,
    /// Empty in the image model.
    pub motion_modules: Vec<AnimateDiffTransformer3D>,
    /// `downsamplers.0` (all levels but the last).
    pub downsampler: Option<Downsample2D>,
}

impl DownBlock2D {
    /// Returns the block output and the hidden states it contributes to the skip connections.
    pub fn forward(
        &self,
        x: &Tensor,
        temb: &Tensor,
        context: &Tensor,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        self.forward_frames(x, temb, context, &FrameLayout::IMAGES)
    }

    /// [`DownBlock2D::forward`] on `x` [b·f, C, H, W], the frames of clips (`layout`).
    pub fn forward_frames(
        &self,
        x: &Tensor,
        temb: &Tensor,
        context: &Tensor,
        layout: &FrameLayout,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let mut x = x.clone();
        let mut states = Vec::new();
        for (i, r) in self.resnets.iter().enumerate() {
            x = r.forward(&x, Some(temb))?;
            if let Some(a) = self.attentions.get(i) {
                x = a.forward_frames(&x, context, layout)?;
            }
            if let Some(m) = self.motion_modules.get(i) {
                x = m.forward(&x, layout.num_frames)?;
            }
            states.push(x.clone());
        }
        if let Some(d) = &self.downsampler {
            x = d.forward(&x)?;
            states.push(x.clone());
        }
        Ok((x, states))
    }
}

/// `CrossAttnUpBlock2D` (with `attentions`) or `UpBlock2D` (without); with `motion_modules`,
/// diffusers' `CrossAttnUpBlockMotion` / `UpBlockMotion`.
#[derive(Debug, Clone)]
pub struct UpBlock2D {
    /// `resnets.N` (one more than the down block's).
    pub resnets: Vec<ResnetBlock2D>,
    /// `attentions.N`, one per resnet (empty in `UpBlock2D`).
    pub attentions: Vec<Transformer2DModel>,
    /// Empty in the image model.
    pub motion_modules: Vec<AnimateDiffTransformer3D>,
    /// `upsamplers.0` (all levels but the last).
    pub upsampler: Option<Upsample2D>,
}

impl UpBlock2D {
    /// `skips` are this block's skip connections in the order they are consumed.
    pub fn forward(
        &self,
        x: &Tensor,
        skips: &[Tensor],
        temb: &Tensor,
        context: &Tensor,
    ) -> Result<Tensor> {
        self.forward_frames(x, skips, temb, context, &FrameLayout::IMAGES)
    }

    /// [`UpBlock2D::forward`] on the frames of clips (`layout`).
    pub fn forward_frames(
        &self,
        x: &Tensor,
        skips: &[Tensor],
        temb: &Tensor,
        context: &Tensor,
        layout: &FrameLayout,
    ) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, r) in self.resnets.iter().enumerate() {
            x = Tensor::cat(&[&x, &skips[i]], 1)?;
            x = r.forward(&x, Some(temb))?;
            if let Some(a) = self.attentions.get(i) {
                x = a.forward_frames(&x, context, layout)?;
            }
            if let Some(m) = self.motion_modules.get(i) {
                x = m.forward(&x, layout.num_frames)?;
            }
        }
        if let Some(u) = &self.upsampler {
            x = u.forward(&x)?;
        }
        Ok(x)
    }
}

/// `UNetMidBlock2DCrossAttn`: `resnets.0`, `attentions.0`, `resnets.1`; with
/// `motion_modules`, diffusers' `UNetMidBlockCrossAttnMotion` (the temporal transformer between
/// the attention and the second resnet).
#[derive(Debug, Clone)]
pub struct UNetMidBlock2DCrossAttn {
    /// `resnets.0` and `resnets.1`.
    pub resnets: Vec<ResnetBlock2D>,
    /// `attentions.0`.
    pub attentions: Vec<Transformer2DModel>,
    /// Empty in the image model (and in motion U-Nets without a mid-block module).
    pub motion_modules: Vec<AnimateDiffTransformer3D>,
}

impl UNetMidBlock2DCrossAttn {
    /// `x` [B, C, H, W], `temb` [B, T], `context` [B, L, D] → [B, C, H, W] (independent images).
    pub fn forward(&self, x: &Tensor, temb: &Tensor, context: &Tensor) -> Result<Tensor> {
        self.forward_frames(x, temb, context, &FrameLayout::IMAGES)
    }

    /// [`UNetMidBlock2DCrossAttn::forward`] on the frames of clips (`layout`).
    pub fn forward_frames(
        &self,
        x: &Tensor,
        temb: &Tensor,
        context: &Tensor,
        layout: &FrameLayout,
    ) -> Result<Tensor> {
        let mut x = self.resnets[0].forward(x, Some(temb))?;
        for (i, (a, r)) in self.attentions.iter().zip(&self.resnets[1..]).enumerate() {
            x = a.forward_frames(&x, context, layout)?;
            if let Some(m) = self.motion_modules.get(i) {
                x = m.forward(&x, layout.num_frames)?;
            }
            x = r.forward(&x, Some(temb))?;
        }
        Ok(x)
    }
}

/// `time_embedding`: `linear_1`, SiLU, `linear_2`.
#[derive(Debug, Clone)]
pub struct TimestepEmbedding {
    /// `linear_1`: Linear from the timestep features (F = `block_out_channels[0]`) to T = 4F.
    pub linear_1: Linear,
    /// `linear_2`: Linear T → T.
    pub linear_2: Linear,
}

impl TimestepEmbedding {
    /// Timestep features [B, F] → time embedding [B, T].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear_2
            .forward(&nn::silu(&self.linear_1.forward(x)?)?)
    }
}

/// Sinusoidal timestep features [B, dim] in f32, computed as diffusers'
/// `get_timestep_embedding` does (f32 frequencies `exp(-ln(10000) i / (dim/2 - shift))`).
pub fn timestep_features(
    timesteps: &Tensor,
    dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
) -> Result<Tensor> {
    let half = dim / 2;
    let ln = -(10000f64.ln() as f32);
    let denom = half as f32 - freq_shift as f32;
    let freqs: Vec<f32> = (0..half).map(|i| ((ln * i as f32) / denom).exp()).collect();
    let freqs = Tensor::from_vec(freqs, (1, half), timesteps.device())?;
    let t = timesteps.to_dtype(DType::F32)?;
    let n = t.dim(0)?;
    let args = t.reshape((n, 1))?.broadcast_mul(&freqs)?;
    let (sin, cos) = (args.sin()?, args.cos()?);
    let mut emb = if flip_sin_to_cos {
        Tensor::cat(&[&cos, &sin], 1)?
    } else {
        Tensor::cat(&[&sin, &cos], 1)?
    };
    if dim % 2 == 1 {
        emb = emb.pad_with_zeros(1, 0, 1)?;
    }
    Ok(emb)
}

/// diffusers' `UNet2DConditionModel` (SD 1.x / SD 2.x / sd-turbo).
#[derive(Debug, Clone)]
pub struct UNet2DConditionModel {
    /// `conv_in`: 3×3 convolution from the latent channels.
    pub conv_in: Conv2d,
    /// `time_embedding`.
    pub time_embedding: TimestepEmbedding,
    /// `down_blocks.N`.
    pub down_blocks: Vec<DownBlock2D>,
    /// `mid_block`.
    pub mid_block: UNetMidBlock2DCrossAttn,
    /// `up_blocks.N`, from the bottom up.
    pub up_blocks: Vec<UpBlock2D>,
    /// GroupNorm (then SiLU) before `conv_out`.
    pub conv_norm_out: GroupNorm,
    /// `conv_out`: 3×3 convolution to the output channels.
    pub conv_out: Conv2d,
    /// The model's config.
    pub config: UNet2DConditionConfig,
    /// The requested dtype: of the outputs, and of the weights off the CPU.
    dtype: DType,
    /// The dtype of the weights and the arithmetic (f32 for half precision on the CPU).
    compute: DType,
}

/// The file name of diffusers' U-Net / VAE weights inside a model folder.
pub const WEIGHTS_FILE: &str = "diffusion_pytorch_model.safetensors";

impl UNet2DConditionModel {
    /// Builds the model from a [`VarBuilder`] rooted at the U-Net's parameters (use
    /// `vb.pp("model.diffusion_model")`-style prefixes for other layouts). The weights' dtype
    /// is the builder's dtype, except that half-precision weights on the CPU are held and
    /// computed in f32 (see [`nn::widen_half_on_cpu`]).
    pub fn new(vb: VarBuilder, config: &UNet2DConditionConfig) -> Result<Self> {
        config.validate()?;
        let dtype = vb.dtype();
        let vb = nn::widen_half_on_cpu(vb);
        let cfg = config;
        let n = cfg.block_out_channels.len();
        let boc = &cfg.block_out_channels;
        let heads = cfg.heads()?;
        let layers = cfg.layers_per_block.per_block(n, "layers_per_block")?;
        let tlayers = cfg
            .transformer_layers_per_block
            .per_block(n, "transformer_layers_per_block")?;
        let groups = cfg.norm_num_groups;
        let eps = cfg.norm_eps;
        let temb_dim = boc[0] * 4;

        let conv_in = Conv2d::new(vb.pp("conv_in"), cfg.in_channels, boc[0], 3, 1, 1)?;
        let time_embedding = TimestepEmbedding {
            linear_1: Linear::new(
                vb.pp("time_embedding").pp("linear_1"),
                boc[0],
                temb_dim,
                true,
            )?,
            linear_2: Linear::new(
                vb.pp("time_embedding").pp("linear_2"),
                temb_dim,
                temb_dim,
                true,
            )?,
        };
        let transformer = |vb: VarBuilder, ch: usize, h: usize, nl: usize| {
            Transformer2DModel::new(
                vb,
                ch,
                h,
                nl,
                cfg.cross_attention_dim,
                groups,
                cfg.use_linear_projection,
                cfg.upcast_attention,
            )
        };

        let mut down_blocks = Vec::with_capacity(n);
        let mut out_ch = boc[0];
        for (i, ty) in cfg.down_block_types.iter().enumerate() {
            let vbb = vb.pp("down_blocks").pp(i);
            let in_ch = out_ch;
            out_ch = boc[i];
            let is_final = i == n - 1;
            let cross = ty == "CrossAttnDownBlock2D";
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..layers[i] {
                let rin = if j == 0 { in_ch } else { out_ch };
                resnets.push(ResnetBlock2D::new(
                    vbb.pp("resnets").pp(j),
                    rin,
                    out_ch,
                    Some(temb_dim),
                    groups,
                    eps,
                )?);
                if cross {
                    attentions.push(transformer(
                        vbb.pp("attentions").pp(j),
                        out_ch,
                        heads[i],
                        tlayers[i],
                    )?);
                }
            }
            let downsampler = if is_final {
                None
            } else {
                Some(Downsample2D::new(
                    vbb.pp("downsamplers").pp(0),
                    out_ch,
                    cfg.downsample_padding,
                )?)
            };
            down_blocks.push(DownBlock2D {
                resnets,
                attentions,
                motion_modules: Vec::new(),
                downsampler,
            });
        }

        let mid_ch = boc[n - 1];
        let vbm = vb.pp("mid_block");
        let mid_block = UNetMidBlock2DCrossAttn {
            resnets: vec![
                ResnetBlock2D::new(
                    vbm.pp("resnets").pp(0),
                    mid_ch,
                    mid_ch,
                    Some(temb_dim),
                    groups,
                    eps,
                )?,
                ResnetBlock2D::new(
                    vbm.pp("resnets").pp(1),
                    mid_ch,
                    mid_ch,
                    Some(temb_dim),
                    groups,
                    eps,
                )?,
            ],
            attentions: vec![transformer(
                vbm.pp("attentions").pp(0),
                mid_ch,
                heads[n - 1],
                tlayers[n - 1],
            )?],
            motion_modules: Vec::new(),
        };

        let rev_boc: Vec<usize> = boc.iter().rev().copied().collect();
        let rev_heads: Vec<usize> = heads.iter().rev().copied().collect();
        let rev_layers: Vec<usize> = layers.iter().rev().copied().collect();
        let rev_tlayers: Vec<usize> = tlayers.iter().rev().copied().collect();
        let mut up_blocks = Vec::with_capacity(n);
        let mut out_ch = rev_boc[0];
        for (i, ty) in cfg.up_block_types.iter().enumerate() {
            let vbb = vb.pp("up_blocks").pp(i);
            let prev_out = out_ch;
            out_ch = rev_boc[i];
            let in_ch = rev_boc[(i + 1).min(n - 1)];
            let is_final = i == n - 1;
            let cross = ty == "CrossAttnUpBlock2D";
            let num_layers = rev_layers[i] + 1;
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..num_layers {
                let skip_ch = if j == num_layers - 1 { in_ch } else { out_ch };
                let rin = if j == 0 { prev_out } else { out_ch };
                resnets.push(ResnetBlock2D::new(
                    vbb.pp("resnets").pp(j),
                    rin + skip_ch,
                    out_ch,
                    Some(temb_dim),
                    groups,
                    eps,
                )?);
                if cross {
                    attentions.push(transformer(
                        vbb.pp("attentions").pp(j),
                        out_ch,
                        rev_heads[i],
                        rev_tlayers[i],
                    )?);
                }
            }
            let upsampler = if is_final {
                None
            } else {
                Some(Upsample2D::new(vbb.pp("upsamplers").pp(0), out_ch)?)
            };
            up_blocks.push(UpBlock2D {
                resnets,
                attentions,
                motion_modules: Vec::new(),
                upsampler,
            });
        }

        Ok(Self {
            conv_in,
            time_embedding,
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNorm::new(vb.pp("conv_norm_out"), groups, boc[0], eps)?,
            conv_out: Conv2d::new(vb.pp("conv_out"), boc[0], cfg.out_channels, 3, 1, 1)?,
            config: cfg.clone(),
            dtype,
            compute: vb.dtype(),
        })
    }

    /// Loads a diffusers `unet` folder (`config.json` + `diffusion_pytorch_model.safetensors`)
    /// with memory maps, in `dtype` on `device`.
    pub fn from_pretrained(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = UNet2DConditionConfig::from_file(&dir.join("config.json"))?;
        let file = dir.join(WEIGHTS_FILE);
        let vb = nn::mmaped_var_builder(std::slice::from_ref(&file), dtype, device)?;
        Self::new(vb, &config).map_err(|e| e.in_file(&file))
    }

    /// Loads a diffusers `unet` folder making the parameters whose full name satisfies
    /// `trainable` [`candle_core::Var`]s registered in `varmap` (e.g. all `attn2.to_k` and
    /// `attn2.to_v` weights); see [`nn::trainable_var_builder`].
    pub fn from_pretrained_trainable(
        dir: &Path,
        varmap: &VarMap,
        trainable: impl Fn(&str) -> bool + Send + Sync + 'static,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let config = UNet2DConditionConfig::from_file(&dir.join("config.json"))?;
        let file = dir.join(WEIGHTS_FILE);
        let vb = nn::trainable_var_builder(
            std::slice::from_ref(&file),
            varmap,
            trainable,
            dtype,
            device,
        )?;
        Self::new(vb, &config).map_err(|e| e.in_file(&file))
    }

    /// The requested dtype: that of the outputs (and of the weights and arithmetic, except
    /// half precision on the CPU, which computes in f32).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Noise prediction. `sample` [B, C, H, W] (H, W multiples of
    /// [`UNet2DConditionConfig::downsampling_factor`]); `timesteps` `[B]` with one (possibly
    /// fractional) timestep per sample, or `[1]` / a scalar for all; `context` `[B, L, D]`.
    /// Inputs are cast to the model's dtype.
    pub fn forward(&self, sample: &Tensor, timesteps: &Tensor, context: &Tensor) -> Result<Tensor> {
        self.forward_frames(sample, timesteps, context, &FrameLayout::IMAGES)
    }

    /// [`UNet2DConditionModel::forward`] on rows that are the frames of clips (`layout`:
    /// `num_frames` consecutive rows per clip), as diffusers' `UNetMotionModel` runs its blocks:
    /// `sample` [b·f, C, H, W], `timesteps` and `context` per row. With motion modules in the
    /// blocks (see `unet_motion`), these attend across the frames of each clip.
    pub fn forward_frames(
        &self,
        sample: &Tensor,
        timesteps: &Tensor,
        context: &Tensor,
        layout: &FrameLayout,
    ) -> Result<Tensor> {
        let (b, c, h, w) = sample.dims4()?;
        if c != self.config.in_channels {
            return Err(Error::InvalidInput {
                name: "sample",
                msg: format!(
                    "{c} channels, the U-Net expects {}",
                    self.config.in_channels
                ),
            });
        }
        let f = self.config.downsampling_factor();
        if h % f != 0 || w % f != 0 {
            return Err(Error::InvalidInput {
                name: "sample",
                msg: format!("spatial size {h}x{w} is not a multiple of {f}"),
            });
        }
        let (cb, _, cd) = context.dims3()?;
        if cb != b || cd != self.config.cross_attention_dim {
            return Err(Error::InvalidInput {
                name: "context",
                msg: format!(
                    "shape {:?}, expected [{b}, L, {}]",
                    context.dims(),
                    self.config.cross_attention_dim
                ),
            });
        }
        let timesteps = match timesteps.rank() {
            0 => timesteps.reshape(1)?.broadcast_as(b)?.contiguous()?,
            1 if timesteps.dim(0)? == b => timesteps.clone(),
            1 if timesteps.dim(0)? == 1 => timesteps.broadcast_as(b)?.contiguous()?,
            _ => {
                return Err(Error::InvalidInput {
                    name: "timesteps",
                    msg: format!("shape {:?}, expected [{b}] or [1]", timesteps.dims()),
                })
            }
        };
        let dtype = self.compute;
        let sample = sample.to_dtype(dtype)?;
        let context = context.to_dtype(dtype)?;

        let t_feat = timestep_features(
            &timesteps,
            self.config.block_out_channels[0],
            self.config.flip_sin_to_cos,
            self.config.freq_shift,
        )?
        .to_dtype(dtype)?;
        let temb = self.time_embedding.forward(&t_feat)?;

        let mut x = self.conv_in.forward(&sample)?;
        let mut skips = vec![x.clone()];
        for blk in &self.down_blocks {
            let (y, states) = blk.forward_frames(&x, &temb, &context, layout)?;
            x = y;
            skips.extend(states);
        }
        x = self.mid_block.forward_frames(&x, &temb, &context, layout)?;
        for blk in &self.up_blocks {
            let k = blk.resnets.len();
            let start = skips.len() - k;
            let mine: Vec<Tensor> = skips.drain(start..).rev().collect();
            x = blk.forward_frames(&x, &mine, &temb, &context, layout)?;
        }
        let x = self.conv_norm_out.forward_silu(&x)?;
        Ok(self.conv_out.forward(&x)?.to_dtype(self.dtype)?)
    }
}
