//! diffusers' `AutoencoderKL` (the Stable Diffusion VAE): encoder to a diagonal Gaussian
//! posterior, decoder from latents, with diffusers' configuration and parameter names.
//! Differentiable end to end.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::unet::{Downsample2D, ResnetBlock2D, Upsample2D, WEIGHTS_FILE};
use brainrecon_nn::layers::{self as nn, Attention, Conv2d, GroupNorm};
use brainrecon_nn::{Error, Result};

fn d_three() -> usize {
    3
}
fn d_four() -> usize {
    4
}
fn d_groups() -> usize {
    32
}
fn d_one() -> usize {
    1
}
fn d_true() -> bool {
    true
}
fn d_scaling() -> f64 {
    0.18215
}
fn d_boc() -> Vec<usize> {
    vec![64]
}

/// diffusers' `vae/config.json` (fields this implementation reads; unknown ones are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct AutoencoderKLConfig {
    /// Channels of the image input (default 3).
    #[serde(default = "d_three")]
    pub in_channels: usize,
    /// Channels of the image output (default 3).
    #[serde(default = "d_three")]
    pub out_channels: usize,
    /// `DownEncoderBlock2D` per level (or empty: the default).
    #[serde(default)]
    pub down_block_types: Vec<String>,
    /// `UpDecoderBlock2D` per level (or empty: the default).
    #[serde(default)]
    pub up_block_types: Vec<String>,
    /// Channels of each encoder level, top to bottom (default `[64]`).
    #[serde(default = "d_boc")]
    pub block_out_channels: Vec<usize>,
    /// Resnets per encoder block (a decoder block has one more).
    #[serde(default = "d_one")]
    pub layers_per_block: usize,
    /// Must be `silu` or absent.
    #[serde(default)]
    pub act_fn: Option<String>,
    /// C: channels of the latents (default 4).
    #[serde(default = "d_four")]
    pub latent_channels: usize,
    /// GroupNorm groups (default 32).
    #[serde(default = "d_groups")]
    pub norm_num_groups: usize,
    /// Side of the images the VAE was trained on, in pixels.
    #[serde(default)]
    pub sample_size: Option<usize>,
    /// Multiplier from posterior samples to U-Net latents (default 0.18215, SD 1.x/2.x).
    #[serde(default = "d_scaling")]
    pub scaling_factor: f64,
    /// Shift subtracted from posterior samples before scaling (none for SD 1.x/2.x).
    #[serde(default)]
    pub shift_factor: Option<f64>,
    /// `Some(false)` lets an f16 pipeline run the VAE in f16; otherwise it runs in f32.
    #[serde(default)]
    pub force_upcast: Option<bool>,
    /// Has `quant_conv` (default true).
    #[serde(default = "d_true")]
    pub use_quant_conv: bool,
    /// Has `post_quant_conv` (default true).
    #[serde(default = "d_true")]
    pub use_post_quant_conv: bool,
    /// The mid blocks have their attention (default true).
    #[serde(default = "d_true")]
    pub mid_block_add_attention: bool,
}

impl AutoencoderKLConfig {
    /// Reads and checks `vae/config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let cfg: Self = nn::read_json_config(path)?;
        cfg.validate()
            .map_err(|e| crate::unet::name_config(e, path))?;
        Ok(cfg)
    }

    /// Parses and checks a JSON string (e.g. a config built in code).
    pub fn from_json_str(json: &str) -> Result<Self> {
        let cfg: Self = nn::parse_json_config(json, Path::new("<string>"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Bounds every size-like field before any tensor is built (hostile `config.json` files).
    pub fn check_sizes(&self) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::*;
        list_len("block_out_channels", self.block_out_channels.len(), 1, 8)?;
        all_positive("block_out_channels", &self.block_out_channels, MAX_CHANNELS)?;
        positive("in_channels", self.in_channels, MAX_CHANNELS)?;
        positive("out_channels", self.out_channels, MAX_CHANNELS)?;
        positive("latent_channels", self.latent_channels, MAX_CHANNELS)?;
        positive("layers_per_block", self.layers_per_block, MAX_LAYERS)?;
        groups_divide(
            "norm_num_groups",
            self.norm_num_groups,
            &self.block_out_channels,
        )?;
        if let Some(s) = self.sample_size {
            positive("sample_size", s, MAX_IMAGE_SIDE)?;
        }
        // Latents are divided by the scaling factor on decode: zero would make them infinite.
        if !(self.scaling_factor.is_finite()
            && self.scaling_factor > 0.0
            && self.scaling_factor <= 1e6)
        {
            return Err(format!(
                "scaling_factor: expected a finite number in (0, 1000000], found {}",
                self.scaling_factor
            ));
        }
        if let Some(shift) = self.shift_factor {
            finite_in("shift_factor", shift, -1e6, 1e6)?;
        }
        Ok(())
    }

    /// Checks the sizes and rejects unsupported block types and activations
    /// ([`Error::InvalidConfig`]).
    pub fn validate(&self) -> Result<()> {
        let n = self.block_out_channels.len();
        let bad = |m: String| Err(Error::InvalidConfig(m));
        self.check_sizes().map_err(Error::InvalidConfig)?;
        for (field, types, want) in [
            (
                "down_block_types",
                &self.down_block_types,
                "DownEncoderBlock2D",
            ),
            ("up_block_types", &self.up_block_types, "UpDecoderBlock2D"),
        ] {
            // diffusers' defaults have a single block; configs list one type per block.
            if !types.is_empty() && types.len() != n {
                return bad(format!(
                    "{field} has {} entries for {n} blocks",
                    types.len()
                ));
            }
            if let Some(t) = types.iter().find(|t| t.as_str() != want) {
                return bad(format!("unsupported {field} entry `{t}`"));
            }
        }
        if !matches!(self.act_fn.as_deref(), None | Some("silu")) {
            return bad(format!("unsupported act_fn {:?}", self.act_fn));
        }
        Ok(())
    }
}

/// The VAE's single-head spatial self-attention (`attentions.0` of the mid blocks):
/// `group_norm`, `to_q/to_k/to_v` with biases, `to_out.0`, residual connection.
#[derive(Debug, Clone)]
pub struct SpatialSelfAttention {
    /// GroupNorm over the channels.
    pub group_norm: GroupNorm,
    /// Single-head attention over the pixels (`to_q`, `to_k`, `to_v`, `to_out.0`).
    pub attn: Attention,
}

impl SpatialSelfAttention {
    /// Reads `group_norm` and the attention under `vb` for `channels` channels; errors on a tensor
    /// `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, channels: usize, groups: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            group_norm: GroupNorm::new(vb.pp("group_norm"), groups, channels, eps)?,
            attn: Attention::new(vb, channels, None, 1, channels, true, false)?,
        })
    }

    /// [B, C, H, W] → [B, C, H, W], with the residual.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let seq = self.group_norm.forward(&x.reshape((b, c, h * w))?)?;
        let seq = seq.transpose(1, 2)?.contiguous()?; // [B, HW, C]
        let out = self.attn.forward(&seq, None)?;
        let out = out.transpose(1, 2)?.reshape((b, c, h, w))?;
        Ok((out + x)?)
    }
}

/// `UNetMidBlock2D` without time embedding: `resnets.0`, optional `attentions.0`, `resnets.1`.
#[derive(Debug, Clone)]
pub struct VaeMidBlock {
    /// `resnets.0` and `resnets.1`.
    pub resnets: Vec<ResnetBlock2D>,
    /// `attentions.0` (when `mid_block_add_attention`).
    pub attention: Option<SpatialSelfAttention>,
}

impl VaeMidBlock {
    fn new(vb: VarBuilder, ch: usize, groups: usize, attention: bool) -> Result<Self> {
        Ok(Self {
            resnets: vec![
                ResnetBlock2D::new(vb.pp("resnets").pp(0), ch, ch, None, groups, 1e-6)?,
                ResnetBlock2D::new(vb.pp("resnets").pp(1), ch, ch, None, groups, 1e-6)?,
            ],
            attention: if attention {
                Some(SpatialSelfAttention::new(
                    vb.pp("attentions").pp(0),
                    ch,
                    groups,
                    1e-6,
                )?)
            } else {
                None
            },
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.resnets[0].forward(x, None)?;
        if let Some(a) = &self.attention {
            x = a.forward(&x)?;
        }
        self.resnets[1].forward(&x, None)
    }
}

/// `DownEncoderBlock2D` / `UpDecoderBlock2D`: resnets then an optional resampler.
#[derive(Debug, Clone)]
pub struct VaeBlock {
    /// `resnets.N`.
    pub resnets: Vec<ResnetBlock2D>,
    /// `downsamplers.0` (encoder levels but the last).
    pub downsampler: Option<Downsample2D>,
    /// `upsamplers.0` (decoder levels but the last).
    pub upsampler: Option<Upsample2D>,
}

impl VaeBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for r in &self.resnets {
            x = r.forward(&x, None)?;
        }
        if let Some(d) = &self.downsampler {
            x = d.forward(&x)?;
        }
        if let Some(u) = &self.upsampler {
            x = u.forward(&x)?;
        }
        Ok(x)
    }
}

/// The VAE encoder (`encoder.*`), producing `2 * latent_channels` moments.
#[derive(Debug, Clone)]
pub struct Encoder {
    /// `conv_in`: 3×3 convolution from the image channels.
    pub conv_in: Conv2d,
    /// `down_blocks.N`.
    pub down_blocks: Vec<VaeBlock>,
    /// `mid_block`.
    pub mid_block: VaeMidBlock,
    /// GroupNorm (then SiLU) before `conv_out`.
    pub conv_norm_out: GroupNorm,
    /// `conv_out`: 3×3 convolution to 2C moments.
    pub conv_out: Conv2d,
}

impl Encoder {
    /// Reads `encoder.*` under `vb`; errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, cfg: &AutoencoderKLConfig) -> Result<Self> {
        let boc = &cfg.block_out_channels;
        let n = boc.len();
        let g = cfg.norm_num_groups;
        let mut down_blocks = Vec::with_capacity(n);
        let mut out_ch = boc[0];
        for (i, &ch) in boc.iter().enumerate() {
            let vbb = vb.pp("down_blocks").pp(i);
            let in_ch = out_ch;
            out_ch = ch;
            let resnets = (0..cfg.layers_per_block)
                .map(|j| {
                    ResnetBlock2D::new(
                        vbb.pp("resnets").pp(j),
                        if j == 0 { in_ch } else { out_ch },
                        out_ch,
                        None,
                        g,
                        1e-6,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let downsampler = if i + 1 < n {
                Some(Downsample2D::new(vbb.pp("downsamplers").pp(0), out_ch, 0)?)
            } else {
                None
            };
            down_blocks.push(VaeBlock {
                resnets,
                downsampler,
                upsampler: None,
            });
        }
        let top = boc[n - 1];
        Ok(Self {
            conv_in: Conv2d::new(vb.pp("conv_in"), cfg.in_channels, boc[0], 3, 1, 1)?,
            down_blocks,
            mid_block: VaeMidBlock::new(vb.pp("mid_block"), top, g, cfg.mid_block_add_attention)?,
            conv_norm_out: GroupNorm::new(vb.pp("conv_norm_out"), g, top, 1e-6)?,
            conv_out: Conv2d::new(vb.pp("conv_out"), top, 2 * cfg.latent_channels, 3, 1, 1)?,
        })
    }

    /// Images [B, in_channels, H, W] → moments [B, 2C, H/f, W/f] (f the down-sampling factor).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.conv_in.forward(x)?;
        for b in &self.down_blocks {
            x = b.forward(&x)?;
        }
        x = self.mid_block.forward(&x)?;
        let x = self.conv_norm_out.forward_silu(&x)?;
        self.conv_out.forward(&x)
    }
}

/// The VAE decoder (`decoder.*`).
#[derive(Debug, Clone)]
pub struct Decoder {
    /// `conv_in`: 3×3 convolution from the C latent channels.
    pub conv_in: Conv2d,
    /// `mid_block`.
    pub mid_block: VaeMidBlock,
    /// `up_blocks.N`, from the bottom up.
    pub up_blocks: Vec<VaeBlock>,
    /// GroupNorm (then SiLU) before `conv_out`.
    pub conv_norm_out: GroupNorm,
    /// `conv_out`: 3×3 convolution to the image channels.
    pub conv_out: Conv2d,
}

impl Decoder {
    /// Reads `decoder.*` under `vb`; errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, cfg: &AutoencoderKLConfig) -> Result<Self> {
        let boc = &cfg.block_out_channels;
        let n = boc.len();
        let g = cfg.norm_num_groups;
        let rev: Vec<usize> = boc.iter().rev().copied().collect();
        let mut up_blocks = Vec::with_capacity(n);
        let mut out_ch = rev[0];
        for (i, &ch) in rev.iter().enumerate() {
            let vbb = vb.pp("up_blocks").pp(i);
            let prev = out_ch;
            out_ch = ch;
            let resnets = (0..cfg.layers_per_block + 1)
                .map(|j| {
                    ResnetBlock2D::new(
                        vbb.pp("resnets").pp(j),
                        if j == 0 { prev } else { out_ch },
                        out_ch,
                        None,
                        g,
                        1e-6,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let upsampler = if i + 1 < n {
                Some(Upsample2D::new(vbb.pp("upsamplers").pp(0), out_ch)?)
            } else {
                None
            };
            up_blocks.push(VaeBlock {
                resnets,
                downsampler: None,
                upsampler,
            });
        }
        Ok(Self {
            conv_in: Conv2d::new(vb.pp("conv_in"), cfg.latent_channels, rev[0], 3, 1, 1)?,
            mid_block: VaeMidBlock::new(
                vb.pp("mid_block"),
                rev[0],
                g,
                cfg.mid_block_add_attention,
            )?,
            up_blocks,
            conv_norm_out: GroupNorm::new(vb.pp("conv_norm_out"), g, boc[0], 1e-6)?,
            conv_out: Conv2d::new(vb.pp("conv_out"), boc[0], cfg.out_channels, 3, 1, 1)?,
        })
    }

    /// Latents [B, C, h, w] → images [B, out_channels, f·h, f·w].
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let mut x = self.conv_in.forward(z)?;
        x = self.mid_block.forward(&x)?;
        for b in &self.up_blocks {
            x = b.forward(&x)?;
        }
        let x = self.conv_norm_out.forward_silu(&x)?;
        self.conv_out.forward(&x)
    }
}

/// The VAE posterior `N(mean, std^2)` per latent element; `logvar` is clamped to [-30, 20].
#[derive(Debug, Clone)]
pub struct DiagonalGaussian {
    /// [B, C, H, W].
    pub mean: Tensor,
    /// [B, C, H, W], clamped to [-30, 20].
    pub logvar: Tensor,
    /// `exp(logvar / 2)`, [B, C, H, W].
    pub std: Tensor,
}

impl DiagonalGaussian {
    /// Splits [B, 2C, H, W] moments into mean and log-variance along channels.
    pub fn from_moments(moments: &Tensor) -> Result<Self> {
        let c2 = moments.dim(1)?;
        let c = c2 / 2;
        let mean = moments.narrow(1, 0, c)?;
        let logvar = moments.narrow(1, c, c)?.clamp(-30f32, 20f32)?;
        let std = (&logvar * 0.5)?.exp()?;
        Ok(Self { mean, logvar, std })
    }

    /// `mean + std * noise` with caller-provided standard normal `noise` (shape of `mean`).
    pub fn sample(&self, noise: &Tensor) -> Result<Tensor> {
        if noise.dims() != self.mean.dims() {
            return Err(Error::InvalidInput {
                name: "noise",
                msg: format!(
                    "shape {:?}, the posterior has shape {:?}",
                    noise.dims(),
                    self.mean.dims()
                ),
            });
        }
        let noise = noise.to_dtype(self.mean.dtype())?;
        Ok((&self.mean + (&self.std * noise)?)?)
    }

    /// The posterior mean (diffusers' `mode()`).
    pub fn mode(&self) -> &Tensor {
        &self.mean
    }
}

/// diffusers' `AutoencoderKL`.
#[derive(Debug, Clone)]
pub struct AutoencoderKL {
    /// `encoder`.
    pub encoder: Encoder,
    /// `decoder`.
    pub decoder: Decoder,
    /// `quant_conv`: 1×1 convolution on the moments (when `use_quant_conv`).
    pub quant_conv: Option<Conv2d>,
    /// `post_quant_conv`: 1×1 convolution on the latents (when `use_post_quant_conv`).
    pub post_quant_conv: Option<Conv2d>,
    /// The model's config.
    pub config: AutoencoderKLConfig,
    /// The requested dtype: of the outputs, and of the weights off the CPU.
    dtype: DType,
    /// The dtype of the weights and the arithmetic (f32 for half precision on the CPU).
    compute: DType,
}

impl AutoencoderKL {
    /// Builds the VAE from diffusers' names under `vb`, computing in f32 for half precision on the
    /// CPU; errors on an invalid config or a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, config: &AutoencoderKLConfig) -> Result<Self> {
        config.validate()?;
        let dtype = vb.dtype();
        let vb = nn::widen_half_on_cpu(vb);
        let l = config.latent_channels;
        Ok(Self {
            encoder: Encoder::new(vb.pp("encoder"), config)?,
            decoder: Decoder::new(vb.pp("decoder"), config)?,
            quant_conv: if config.use_quant_conv {
                Some(Conv2d::new(vb.pp("quant_conv"), 2 * l, 2 * l, 1, 1, 0)?)
            } else {
                None
            },
            post_quant_conv: if config.use_post_quant_conv {
                Some(Conv2d::new(vb.pp("post_quant_conv"), l, l, 1, 1, 0)?)
            } else {
                None
            },
            config: config.clone(),
            dtype,
            compute: vb.dtype(),
        })
    }

    /// Loads a diffusers `vae` folder (`config.json` + `diffusion_pytorch_model.safetensors`)
    /// with memory maps, in `dtype` on `device`.
    pub fn from_pretrained(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = AutoencoderKLConfig::from_file(&dir.join("config.json"))?;
        let file = dir.join(WEIGHTS_FILE);
        let vb = nn::mmaped_var_builder(std::slice::from_ref(&file), dtype, device)?;
        Self::new(vb, &config).map_err(|e| e.in_file(&file))
    }

    /// The requested dtype (of the outputs).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Multiplier from posterior samples to U-Net latents (0.18215 for SD 1.x/2.x).
    pub fn scaling_factor(&self) -> f64 {
        self.config.scaling_factor
    }

    /// Shift subtracted before scaling (None for SD 1.x/2.x).
    pub fn shift_factor(&self) -> Option<f64> {
        self.config.shift_factor
    }

    /// `(z - shift) * scaling_factor`: VAE latents to U-Net latents.
    pub fn scale_latents(&self, z: &Tensor) -> Result<Tensor> {
        let z = match self.config.shift_factor {
            Some(s) => (z - s)?,
            None => z.clone(),
        };
        Ok((z * self.config.scaling_factor)?)
    }

    /// `z / scaling_factor + shift`: U-Net latents to VAE latents.
    pub fn unscale_latents(&self, z: &Tensor) -> Result<Tensor> {
        let z = (z / self.config.scaling_factor)?;
        Ok(match self.config.shift_factor {
            Some(s) => (z + s)?,
            None => z,
        })
    }

    /// Images [B, in_channels, H, W] in [-1, 1] → posterior over latents [B, C, H/f, W/f].
    pub fn encode(&self, x: &Tensor) -> Result<DiagonalGaussian> {
        let (_, c, h, w) = x.dims4()?;
        let f = 1usize << (self.config.block_out_channels.len() - 1);
        if c != self.config.in_channels || h % f != 0 || w % f != 0 {
            return Err(Error::InvalidInput {
                name: "image",
                msg: format!(
                    "shape {:?}, expected [B, {}, H, W] with H, W multiples of {f}",
                    x.dims(),
                    self.config.in_channels
                ),
            });
        }
        let h = self.encoder.forward(&x.to_dtype(self.compute)?)?;
        let moments = match &self.quant_conv {
            Some(q) => q.forward(&h)?,
            None => h,
        };
        DiagonalGaussian::from_moments(&moments.to_dtype(self.dtype)?)
    }

    /// VAE latents [B, latent_channels, h, w] (unscaled) → images [B, out_channels, H, W].
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let (_, c, _, _) = z.dims4()?;
        if c != self.config.latent_channels {
            return Err(Error::InvalidInput {
                name: "latents",
                msg: format!(
                    "{c} channels, the VAE expects {}",
                    self.config.latent_channels
                ),
            });
        }
        let z = z.to_dtype(self.compute)?;
        let z = match &self.post_quant_conv {
            Some(p) => p.forward(&z)?,
            None => z,
        };
        Ok(self.decoder.forward(&z)?.to_dtype(self.dtype)?)
    }
}
