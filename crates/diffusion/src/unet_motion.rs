//! diffusers' `UNetMotionModel` (AnimateDiff): the project's image U-Net
//! ([`UNet2DConditionModel`]) with a temporal transformer ([`AnimateDiffTransformer3D`]) after
//! each resnet + attention pair of the down and up blocks and, when the adapter has one, between
//! the mid block's attention and its second resnet. There is one U-Net implementation: the
//! motion modules live in the image U-Net's blocks (`motion_modules`, empty for images), and
//! [`UNetMotionModel::forward`] runs the blocks on the frames of clips.
//!
//! Loading, with the parameter names of diffusers:
//! - [`UNetMotionModel::from_pretrained`]: a `UNetMotionModel` folder (`save_pretrained`:
//!   `config.json` + `diffusion_pytorch_model.safetensors`, names like
//!   `down_blocks.0.motion_modules.0.proj_in.weight`);
//! - [`UNetMotionModel::from_unet2d`]: an image `unet` folder and a `MotionAdapter` folder, as
//!   diffusers' `UNetMotionModel.from_unet2d(unet, motion_adapter)` (the adapter must fit the
//!   U-Net's blocks; its modules use the U-Net's `norm_num_groups`, as diffusers builds them);
//! - original AnimateDiff checkpoints through [`MotionAdapter::from_original`], then
//!   [`UNetMotionModel::from_parts`].
//!
//! Every tensor of a checkpoint must be read; leftovers are an error naming the file.
//! [`UNetMotionModel::init_motion_modules`] adds fresh, trainable modules (zero `proj_out`) to a
//! frozen image U-Net. MinD-Video's sparse-causal spatial attention is an option
//! ([`SpatialAttention::SparseCausal`]).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::motion::{
    check_all_used, names_read, safetensors_names, AnimateDiffTransformer3D, LayersPerBlock,
    MotionAdapter, MotionAdapterConfig, MotionModuleConfig,
};
use crate::unet::{
    FrameLayout, OneOrMany, SpatialAttention, UNet2DConditionConfig, UNet2DConditionModel,
    WEIGHTS_FILE,
};
use brainrecon_nn::layers as nn;
use brainrecon_nn::params::Parameters;
use brainrecon_nn::{Error, Result};

fn d_four() -> usize {
    4
}
fn d_eight() -> OneOrMany {
    OneOrMany::One(8)
}
fn d_two() -> OneOrMany {
    OneOrMany::One(2)
}
fn d_one() -> OneOrMany {
    OneOrMany::One(1)
}
fn d_one_layer() -> LayersPerBlock {
    LayersPerBlock::One(1)
}
fn d_mid_temporal() -> Option<OneOrMany> {
    Some(OneOrMany::One(1))
}
fn d_padding() -> usize {
    1
}
fn d_scale() -> f64 {
    1.0
}
fn d_groups() -> usize {
    32
}
fn d_eps() -> f64 {
    1e-5
}
fn d_cross() -> usize {
    1280
}
fn d_max_len() -> usize {
    32
}
fn d_true() -> bool {
    true
}
fn d_mid_layers() -> usize {
    1
}

/// diffusers' `UNetMotionModel` `config.json` (the fields that shape the model; options this
/// implementation lacks are rejected by [`UNetMotionConfig::validate`]).
#[derive(Debug, Clone, Deserialize)]
pub struct UNetMotionConfig {
    /// Side of the latent the model was trained on.
    #[serde(default)]
    pub sample_size: Option<usize>,
    /// Channels of the latent input (default 4).
    #[serde(default = "d_four")]
    pub in_channels: usize,
    /// Channels of the output (default 4).
    #[serde(default = "d_four")]
    pub out_channels: usize,
    /// `CrossAttnDownBlockMotion` or `DownBlockMotion`, per level.
    pub down_block_types: Vec<String>,
    /// `CrossAttnUpBlockMotion` or `UpBlockMotion`, per level from the bottom up.
    pub up_block_types: Vec<String>,
    /// Channels of each level, top to bottom.
    pub block_out_channels: Vec<usize>,
    /// Resnets (and motion modules) per down block; an up block has one more.
    #[serde(default = "d_two")]
    pub layers_per_block: OneOrMany,
    /// Padding of the down-samplers' convolutions: 1 (default) or 0.
    #[serde(default = "d_padding")]
    pub downsample_padding: usize,
    /// Must be 1 (the default).
    #[serde(default = "d_scale")]
    pub mid_block_scale_factor: f64,
    /// Must be `silu` or absent.
    #[serde(default)]
    pub act_fn: Option<String>,
    /// GroupNorm groups, of the U-Net and of the motion modules.
    #[serde(default = "d_groups")]
    pub norm_num_groups: usize,
    /// Epsilon of the GroupNorms (default 1e-5).
    #[serde(default = "d_eps")]
    pub norm_eps: f64,
    /// Width of the cross-attention context (default 1280).
    #[serde(default = "d_cross")]
    pub cross_attention_dim: usize,
    /// Transformer blocks per spatial `Transformer2DModel`, per block.
    #[serde(default = "d_one")]
    pub transformer_layers_per_block: OneOrMany,
    /// Must be null.
    #[serde(default)]
    pub reverse_transformer_layers_per_block: serde_json::Value,
    /// Temporal blocks in each motion module of the down and up blocks.
    #[serde(default = "d_one_layer")]
    pub temporal_transformer_layers_per_block: LayersPerBlock,
    /// Must be null.
    #[serde(default)]
    pub reverse_temporal_transformer_layers_per_block: serde_json::Value,
    /// Transformer blocks of the mid block's attention; must equal the last block's.
    #[serde(default)]
    pub transformer_layers_per_mid_block: Option<usize>,
    /// Temporal blocks in each motion module of the mid block (default 1).
    #[serde(default = "d_mid_temporal")]
    pub temporal_transformer_layers_per_mid_block: Option<OneOrMany>,
    /// `proj_in` / `proj_out` of the spatial transformers are linear (SD 2.x).
    #[serde(default)]
    pub use_linear_projection: bool,
    /// Attention heads of the spatial transformers, per block (default 8).
    #[serde(default = "d_eight")]
    pub num_attention_heads: OneOrMany,
    /// Longest clip, in frames, the motion modules' positions cover (default 32).
    #[serde(default = "d_max_len")]
    pub motion_max_seq_length: usize,
    /// Attention heads of the motion modules, per block (default 8).
    #[serde(default = "d_eight")]
    pub motion_num_attention_heads: OneOrMany,
    /// Must be null.
    #[serde(default)]
    pub reverse_motion_num_attention_heads: serde_json::Value,
    /// Whether the mid block has motion modules (default true).
    #[serde(default = "d_true")]
    pub use_motion_mid_block: bool,
    /// Resnet + attention pairs of the mid block; must be 1 (the default).
    #[serde(default = "d_mid_layers")]
    pub mid_block_layers: usize,
    /// Must be absent.
    #[serde(default)]
    pub encoder_hid_dim: Option<usize>,
    /// Must be absent.
    #[serde(default)]
    pub encoder_hid_dim_type: Option<String>,
    /// Must be absent.
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    /// Must be absent.
    #[serde(default)]
    pub time_cond_proj_dim: Option<usize>,
}

impl UNetMotionConfig {
    /// Parses a `UNetMotionModel` `config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let cfg: Self = nn::read_json_config(path)?;
        cfg.validate().map_err(|e| e.in_file(path))?;
        Ok(cfg)
    }

    /// The `config.json` of diffusers' `UNetMotionModel.from_unet2d(unet, adapter)`: the image
    /// U-Net's settings with `Motion` block types, the adapter's motion fields and
    /// `num_attention_heads` taken from the U-Net's heads. Returns the JSON to write (with
    /// `_class_name`) and the config it parses to.
    pub fn from_unet2d(
        unet: &UNet2DConditionConfig,
        adapter: &MotionAdapterConfig,
    ) -> Result<(serde_json::Value, Self)> {
        let fitted = fit_adapter_config(unet, adapter)?;
        let motion = |types: &[String], suffix: &str| -> Vec<String> {
            types
                .iter()
                .map(|t| match t.starts_with("CrossAttn") {
                    true => format!("CrossAttn{suffix}BlockMotion"),
                    false => format!("{suffix}BlockMotion"),
                })
                .collect()
        };
        let json = serde_json::json!({
            "_class_name": "UNetMotionModel",
            "sample_size": unet.sample_size,
            "in_channels": unet.in_channels,
            "out_channels": unet.out_channels,
            "down_block_types": motion(&unet.down_block_types, "Down"),
            "up_block_types": motion(&unet.up_block_types, "Up"),
            "block_out_channels": unet.block_out_channels,
            "layers_per_block": fitted.motion_layers_per_block,
            "downsample_padding": unet.downsample_padding,
            "mid_block_scale_factor": unet.mid_block_scale_factor,
            "act_fn": unet.act_fn,
            "norm_num_groups": unet.norm_num_groups,
            "norm_eps": unet.norm_eps,
            "cross_attention_dim": unet.cross_attention_dim,
            "transformer_layers_per_block": unet.transformer_layers_per_block,
            "use_linear_projection": unet.use_linear_projection,
            "num_attention_heads": unet
                .num_attention_heads
                .clone()
                .unwrap_or_else(|| unet.attention_head_dim.clone()),
            "temporal_transformer_layers_per_block": fitted.motion_transformer_layers_per_block,
            "temporal_transformer_layers_per_mid_block":
                fitted.motion_transformer_layers_per_mid_block,
            "use_motion_mid_block": fitted.use_motion_mid_block,
            "mid_block_layers": fitted.motion_mid_block_layers_per_block,
            "motion_num_attention_heads": fitted.motion_num_attention_heads,
            "motion_max_seq_length": fitted.motion_max_seq_length,
        });
        let config: Self = serde_json::from_value(json.clone()).map_err(|e| {
            Error::InvalidConfig(format!("cannot build a UNetMotionModel config: {e}"))
        })?;
        config.validate()?;
        Ok((json, config))
    }

    /// Bounds the motion fields under their own names (the image U-Net's fields are checked
    /// by [`UNet2DConditionConfig::check_sizes`], the layout by the adapter's check).
    fn check_motion_sizes(&self) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::*;
        let n = self.block_out_channels.len();
        list_len("block_out_channels", n, 1, 8)?;
        let field = "temporal_transformer_layers_per_block";
        self.temporal_transformer_layers_per_block.check(field, n)?;
        let per_block = |v: &OneOrMany, field: &str, count: usize| {
            let v = v.per_block(count, field).map_err(|e| e.to_string())?;
            all_positive(field, &v, MAX_LAYERS)
        };
        // Before expanding per-layer lists to it.
        positive("mid_block_layers", self.mid_block_layers, MAX_LAYERS)?;
        if let Some(mid) = &self.temporal_transformer_layers_per_mid_block {
            let field = "temporal_transformer_layers_per_mid_block";
            per_block(mid, field, self.mid_block_layers)?;
        }
        if let Some(k) = self.transformer_layers_per_mid_block {
            positive("transformer_layers_per_mid_block", k, MAX_LAYERS)?;
        }
        per_block(
            &self.motion_num_attention_heads,
            "motion_num_attention_heads",
            n,
        )?;
        per_block(&self.num_attention_heads, "num_attention_heads", n)?;
        positive("motion_max_seq_length", self.motion_max_seq_length, 65_536)?;
        Ok(())
    }

    /// Rejects options of `UNetMotionModel` this implementation does not have.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        self.check_motion_sizes().map_err(Error::InvalidConfig)?;
        for (field, value) in [
            (
                "reverse_transformer_layers_per_block",
                &self.reverse_transformer_layers_per_block,
            ),
            (
                "reverse_temporal_transformer_layers_per_block",
                &self.reverse_temporal_transformer_layers_per_block,
            ),
            (
                "reverse_motion_num_attention_heads",
                &self.reverse_motion_num_attention_heads,
            ),
        ] {
            if !value.is_null() {
                return bad(format!("`{field}` is not supported (expected null)"));
            }
        }
        let unsupported = [
            ("encoder_hid_dim", self.encoder_hid_dim.is_some()),
            ("encoder_hid_dim_type", self.encoder_hid_dim_type.is_some()),
            ("addition_embed_type", self.addition_embed_type.is_some()),
            ("time_cond_proj_dim", self.time_cond_proj_dim.is_some()),
        ];
        for (field, is_set) in unsupported {
            if is_set {
                return bad(format!("`{field}` is not supported (expected null)"));
            }
        }
        if self.mid_block_layers != 1 {
            return bad(format!(
                "`mid_block_layers` is {}; only 1 (every Stable Diffusion U-Net) is supported",
                self.mid_block_layers
            ));
        }
        let n = self.block_out_channels.len();
        let tlayers = self
            .transformer_layers_per_block
            .per_block(n.max(1), "transformer_layers_per_block")?;
        if let (Some(mid), Some(last)) = (self.transformer_layers_per_mid_block, tlayers.last()) {
            if mid != *last {
                return bad(format!(
                    "`transformer_layers_per_mid_block` {mid} differs from the last block's \
                     transformer_layers_per_block {last}; not supported"
                ));
            }
        }
        self.unet_config()?;
        self.adapter_config().module_configs()?;
        Ok(())
    }

    /// The image U-Net these blocks extend (block types without `Motion`).
    pub fn unet_config(&self) -> Result<UNet2DConditionConfig> {
        let rename = |types: &[String], cross: &str, plain: &str, field: &str| {
            types
                .iter()
                .map(|t| match t.as_str() {
                    t if t.starts_with("CrossAttn") && t.ends_with("Motion") => Ok(cross.into()),
                    t if t.ends_with("BlockMotion") => Ok(plain.into()),
                    other => Err(Error::InvalidConfig(format!(
                        "`{field}`: unsupported block type `{other}`"
                    ))),
                })
                .collect::<Result<Vec<String>>>()
        };
        let down = rename(
            &self.down_block_types,
            "CrossAttnDownBlock2D",
            "DownBlock2D",
            "down_block_types",
        )?;
        let up = rename(
            &self.up_block_types,
            "CrossAttnUpBlock2D",
            "UpBlock2D",
            "up_block_types",
        )?;
        let json = serde_json::json!({
            "sample_size": self.sample_size,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "down_block_types": down,
            "up_block_types": up,
            "block_out_channels": self.block_out_channels,
            "layers_per_block": self.layers_per_block,
            "downsample_padding": self.downsample_padding,
            "mid_block_scale_factor": self.mid_block_scale_factor,
            "act_fn": self.act_fn,
            "norm_num_groups": self.norm_num_groups,
            "norm_eps": self.norm_eps,
            "cross_attention_dim": self.cross_attention_dim,
            "transformer_layers_per_block": self.transformer_layers_per_block,
            "use_linear_projection": self.use_linear_projection,
            "num_attention_heads": self.num_attention_heads,
            "attention_head_dim": self.num_attention_heads,
            "flip_sin_to_cos": true,
            "freq_shift": 0,
        });
        UNet2DConditionConfig::from_json_str(&json.to_string())
    }

    /// The motion modules' layout, as a `MotionAdapter` config (group norms with the U-Net's
    /// `norm_num_groups`, as `UNetMotionModel` builds them).
    pub fn adapter_config(&self) -> MotionAdapterConfig {
        MotionAdapterConfig {
            block_out_channels: self.block_out_channels.clone(),
            motion_layers_per_block: self.layers_per_block.clone(),
            motion_transformer_layers_per_block: self.temporal_transformer_layers_per_block.clone(),
            motion_mid_block_layers_per_block: self.mid_block_layers,
            motion_transformer_layers_per_mid_block: self
                .temporal_transformer_layers_per_mid_block
                .clone()
                .unwrap_or(OneOrMany::One(1)),
            motion_num_attention_heads: self.motion_num_attention_heads.clone(),
            motion_norm_num_groups: self.norm_num_groups,
            motion_max_seq_length: self.motion_max_seq_length,
            use_motion_mid_block: self.use_motion_mid_block,
            conv_in_channels: None,
        }
    }
}

/// The adapter config as `UNetMotionModel.from_unet2d` uses it with `unet`: an error naming
/// the field when the adapter does not fit the U-Net's blocks; the modules' group norms take the
/// U-Net's `norm_num_groups` (diffusers builds them so, whatever the adapter's
/// `motion_norm_num_groups`).
pub fn fit_adapter_config(
    unet: &UNet2DConditionConfig,
    adapter: &MotionAdapterConfig,
) -> Result<MotionAdapterConfig> {
    let bad = |m: String| Err(Error::InvalidConfig(m));
    let n = unet.block_out_channels.len();
    if adapter.block_out_channels.len() != n {
        return bad(format!(
            "`block_out_channels` has {} blocks, the U-Net has {n} (its block_out_channels {:?})",
            adapter.block_out_channels.len(),
            unet.block_out_channels
        ));
    }
    if adapter.block_out_channels != unet.block_out_channels {
        return bad(format!(
            "`block_out_channels` {:?} differ from the U-Net's {:?}",
            adapter.block_out_channels, unet.block_out_channels
        ));
    }
    let unet_layers = unet.layers_per_block.per_block(n, "layers_per_block")?;
    let adapter_layers = adapter
        .motion_layers_per_block
        .per_block(n, "motion_layers_per_block")?;
    if unet_layers != adapter_layers {
        return bad(format!(
            "`motion_layers_per_block` {adapter_layers:?} differs from the U-Net's \
             layers_per_block {unet_layers:?}"
        ));
    }
    if adapter.use_motion_mid_block && adapter.motion_mid_block_layers_per_block != 1 {
        return bad(format!(
            "`motion_mid_block_layers_per_block` is {}, the U-Net's mid block has one attention",
            adapter.motion_mid_block_layers_per_block
        ));
    }
    if adapter.conv_in_channels.is_some_and(|c| c > 0) {
        return bad("`conv_in_channels` (a PIA adapter) is not supported (expected null)".into());
    }
    let fitted = MotionAdapterConfig {
        motion_norm_num_groups: unet.norm_num_groups,
        ..adapter.clone()
    };
    fitted.module_configs()?;
    Ok(fitted)
}

/// diffusers' `UNetMotionModel`: the image U-Net with motion modules in its blocks.
#[derive(Debug, Clone)]
pub struct UNetMotionModel {
    /// The image U-Net, its blocks holding the motion modules.
    pub unet: UNet2DConditionModel,
    /// The motion modules' layout (group norms as built).
    pub adapter_config: MotionAdapterConfig,
    /// `PerFrame` (AnimateDiff, diffusers) or MinD-Video's `SparseCausal`.
    pub spatial_attention: SpatialAttention,
}

impl UNetMotionModel {
    /// Puts `adapter`'s modules into `unet`'s blocks. The adapter must have been built with
    /// [`fit_adapter_config`]'s config for this U-Net (checked module by module).
    pub fn from_parts(mut unet: UNet2DConditionModel, adapter: MotionAdapter) -> Result<Self> {
        let fitted = fit_adapter_config(&unet.config, &adapter.config)?;
        let (down, mid, up) = fitted.module_configs()?;
        let built = adapter.modules();
        let expected: Vec<&MotionModuleConfig> = down
            .iter()
            .flatten()
            .chain(mid.iter().flatten())
            .chain(up.iter().flatten())
            .collect();
        if built.len() != expected.len() {
            return Err(Error::InvalidConfig(format!(
                "the adapter has {} motion modules, the U-Net takes {}",
                built.len(),
                expected.len()
            )));
        }
        for ((name, module), want) in built.iter().zip(&expected) {
            if &module.config != *want {
                return Err(Error::InvalidConfig(format!(
                    "motion module `{name}` was built as {:?}, the U-Net needs {:?} (build the \
                     adapter with fit_adapter_config's config)",
                    module.config, want
                )));
            }
        }
        for (block, modules) in unet.down_blocks.iter_mut().zip(adapter.down_blocks) {
            block.motion_modules = modules.motion_modules;
        }
        if let Some(modules) = adapter.mid_block {
            unet.mid_block.motion_modules = modules.motion_modules;
        }
        for (block, modules) in unet.up_blocks.iter_mut().zip(adapter.up_blocks) {
            block.motion_modules = modules.motion_modules;
        }
        Ok(Self {
            unet,
            adapter_config: fitted,
            spatial_attention: SpatialAttention::PerFrame,
        })
    }

    /// Builds the model from `vb` rooted at a `UNetMotionModel`'s parameters.
    pub fn new(vb: VarBuilder, config: &UNetMotionConfig) -> Result<Self> {
        config.validate()?;
        let unet = UNet2DConditionModel::new(vb.clone(), &config.unet_config()?)?;
        let adapter = MotionAdapter::new(nn::widen_half_on_cpu(vb), &config.adapter_config())?;
        Self::from_parts(unet, adapter)
    }

    /// Loads a diffusers `UNetMotionModel` folder (`config.json` +
    /// `diffusion_pytorch_model.safetensors`) in `dtype` on `device`.
    pub fn from_pretrained(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = UNetMotionConfig::from_file(&dir.join("config.json"))?;
        let file = dir.join(WEIGHTS_FILE);
        let read = names_read(|vb| Self::new(vb, &config), device)?;
        check_all_used(&file, safetensors_names(&file)?, &read)?;
        let vb = nn::mmaped_var_builder(std::slice::from_ref(&file), dtype, device)?;
        Self::new(vb, &config).map_err(|e| e.in_file(&file))
    }

    /// diffusers' `UNetMotionModel.from_unet2d(unet, motion_adapter)` from a `unet` folder and a
    /// `MotionAdapter` folder. An adapter that does not fit the U-Net is an error naming the
    /// adapter's `config.json` and the field.
    pub fn from_unet2d(
        unet_dir: &Path,
        adapter_dir: &Path,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let unet_config = UNet2DConditionConfig::from_file(&unet_dir.join("config.json"))?;
        let unet_file = unet_dir.join(WEIGHTS_FILE);
        let read = names_read(|vb| UNet2DConditionModel::new(vb, &unet_config), device)?;
        check_all_used(&unet_file, safetensors_names(&unet_file)?, &read)?;
        let unet = UNet2DConditionModel::from_pretrained(unet_dir, dtype, device)?;
        Self::with_adapter_dir(unet, adapter_dir, dtype, device)
    }

    /// [`UNetMotionModel::from_unet2d`] for an image U-Net already loaded (e.g. the one of a
    /// [`crate::pipeline::StableDiffusion`]; its tensors are shared, not copied).
    pub fn with_adapter_dir(
        unet: UNet2DConditionModel,
        adapter_dir: &Path,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let config_path = adapter_dir.join("config.json");
        let adapter_config = MotionAdapterConfig::from_file(&config_path)?;
        let fitted = fit_adapter_config(&unet.config, &adapter_config)
            .map_err(|e| e.in_file(&config_path))?;
        let file = adapter_dir.join(WEIGHTS_FILE);
        let read = names_read(|vb| MotionAdapter::new(vb, &fitted), device)?;
        check_all_used(&file, safetensors_names(&file)?, &read)?;
        let vb = nn::mmaped_var_builder(std::slice::from_ref(&file), dtype, device)?;
        let adapter =
            MotionAdapter::new(nn::widen_half_on_cpu(vb), &fitted).map_err(|e| e.in_file(&file))?;
        Self::from_parts(unet, adapter)
    }

    /// Fresh, trainable motion modules (seeded, `proj_out` at zero) in a frozen image U-Net:
    /// only the returned [`Parameters`] (named as in a `MotionAdapter`,
    /// `down_blocks.0.motion_modules.0.proj_in.weight`, ...) take gradients. Untrained, the
    /// model equals the image U-Net applied to each frame.
    pub fn init_motion_modules(
        unet: UNet2DConditionModel,
        adapter_config: &MotionAdapterConfig,
        seed: u64,
    ) -> Result<(Self, Parameters)> {
        let fitted = fit_adapter_config(&unet.config, adapter_config)?;
        let device = unet.conv_in.weight.device().clone();
        let dtype = unet.conv_in.weight.dtype();
        let (adapter, params) = MotionAdapter::init_zero_out(&fitted, seed, dtype, &device)
            .map_err(|e| {
                Error::InvalidConfig(format!("cannot initialise the motion modules: {e}"))
            })?;
        Ok((Self::from_parts(unet, adapter)?, params))
    }

    /// With MinD-Video's sparse-causal spatial self-attention (or back to per-frame).
    pub fn with_spatial_attention(mut self, spatial_attention: SpatialAttention) -> Self {
        self.spatial_attention = spatial_attention;
        self
    }

    /// The longest clip the motion modules' positions cover (`motion_max_seq_length`).
    pub fn max_frames(&self) -> usize {
        self.adapter_config.motion_max_seq_length
    }

    /// Every motion module with its diffusers prefix (`down_blocks.0.motion_modules.0`, ...).
    pub fn motion_modules(&self) -> Vec<(String, &AnimateDiffTransformer3D)> {
        let unet = &self.unet;
        let down = unet.down_blocks.iter().enumerate();
        let up = unet.up_blocks.iter().enumerate();
        let blocks: Vec<(String, &Vec<AnimateDiffTransformer3D>)> = down
            .map(|(i, b)| (format!("down_blocks.{i}"), &b.motion_modules))
            .chain(std::iter::once((
                "mid_block".to_string(),
                &unet.mid_block.motion_modules,
            )))
            .chain(up.map(|(i, b)| (format!("up_blocks.{i}"), &b.motion_modules)))
            .collect();
        blocks
            .into_iter()
            .flat_map(|(prefix, modules)| {
                modules
                    .iter()
                    .enumerate()
                    .map(move |(m, module)| (format!("{prefix}.motion_modules.{m}"), module))
            })
            .collect()
    }

    /// Noise prediction for clips: `sample` `[b, C, f, H, W]` (diffusers' layout), `timesteps` `[b]`
    /// (one per clip), `[1]` or a scalar, `context` `[b, L, D]` (one per clip, repeated per frame
    /// as diffusers' AnimateDiffPipeline does) or already [b·f, L, D] → [b, C_out, f, H, W].
    pub fn forward(&self, sample: &Tensor, timesteps: &Tensor, context: &Tensor) -> Result<Tensor> {
        let (b, c, f, h, w) = sample.dims5().map_err(|_| Error::InvalidInput {
            name: "sample",
            msg: format!(
                "shape {:?}, expected [batch, channels, frames, height, width]",
                sample.dims()
            ),
        })?;
        let max = self.max_frames();
        if f == 0 || f > max {
            return Err(Error::InvalidInput {
                name: "sample",
                msg: format!(
                    "{f} frames; the motion modules cover 1 to {max} frames (the adapter's \
                     motion_max_seq_length)"
                ),
            });
        }
        let rows = sample
            .permute((0, 2, 1, 3, 4))?
            .contiguous()?
            .reshape((b * f, c, h, w))?;
        let per_frame = |t: &Tensor| -> Result<Tensor> {
            let mut dims = t.dims().to_vec();
            dims.insert(1, f);
            let mut flat = t.dims().to_vec();
            flat[0] *= f;
            Ok(t.unsqueeze(1)?
                .broadcast_as(dims.as_slice())?
                .contiguous()?
                .reshape(flat.as_slice())?)
        };
        let timesteps = match timesteps.dims() {
            [] | [1] => timesteps.clone(),
            [n] if *n == b => per_frame(timesteps)?,
            other => {
                return Err(Error::InvalidInput {
                    name: "timesteps",
                    msg: format!("shape {other:?}, expected [{b}], [1] or a scalar"),
                })
            }
        };
        let context = match context.dims() {
            [n, _, _] if *n == b => per_frame(context)?,
            [n, _, _] if *n == b * f => context.clone(),
            other => {
                return Err(Error::InvalidInput {
                    name: "context",
                    msg: format!("shape {other:?}, expected [{b}, L, D] or [{}, L, D]", b * f),
                })
            }
        };
        let layout = FrameLayout::clips(f, self.spatial_attention);
        let out = self
            .unet
            .forward_frames(&rows, &timesteps, &context, &layout)?;
        let c_out = out.dim(1)?;
        Ok(out
            .reshape((b, f, c_out, h, w))?
            .permute((0, 2, 1, 3, 4))?
            .contiguous()?)
    }
}

/// Writes a whole motion U-Net (`params`: every image U-Net tensor and every motion module,
/// under `UNetMotionModel`'s names, e.g. after training both; the position buffers
/// `pos_embed.pe` may be left out, as they are computed) as a diffusers `UNetMotionModel`
/// folder for `unet` + `adapter`: `config.json` and `diffusion_pytorch_model.safetensors`,
/// each written atomically. Loads with [`UNetMotionModel::from_pretrained`] (every tensor
/// checked) and with diffusers' `UNetMotionModel.from_pretrained`.
pub fn save_unet_motion(
    params: &Parameters,
    unet: &UNet2DConditionConfig,
    adapter: &MotionAdapterConfig,
    dir: &Path,
) -> Result<()> {
    let (json, config) = UNetMotionConfig::from_unet2d(unet, adapter)?;
    let read = names_read(|vb| UNetMotionModel::new(vb, &config), &Device::Cpu)?;
    // The sinusoidal position buffers may be stored or not: computed when absent.
    let computed = |n: &String| n.ends_with(".pos_embed.pe");
    let mut have: Vec<String> = params
        .names()
        .into_iter()
        .filter(|n| !computed(n))
        .collect();
    let mut want: Vec<String> = read.into_iter().filter(|n| !computed(n)).collect();
    have.sort();
    want.sort();
    if have != want {
        let missing: Vec<&String> = want.iter().filter(|n| !have.contains(n)).take(3).collect();
        let extra: Vec<&String> = have.iter().filter(|n| !want.contains(n)).take(3).collect();
        return Err(Error::InvalidConfig(format!(
            "the parameters are not a whole UNetMotionModel (missing e.g. {missing:?}, \
             unexpected e.g. {extra:?})"
        )));
    }
    write_model_folder(dir, &json, params)
}

/// `dir/config.json` (`json`) and `dir/diffusion_pytorch_model.safetensors` (`params`), each
/// written atomically.
fn write_model_folder(dir: &Path, json: &serde_json::Value, params: &Parameters) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::ReadFile {
        path: dir.to_path_buf(),
        source,
    })?;
    let config_path = dir.join("config.json");
    brainrecon_core::fs::write_json_atomic(&config_path, json)
        .map_err(|e| Error::InvalidConfig(e.to_string()).in_file(&config_path))?;
    let weights = dir.join(WEIGHTS_FILE);
    params
        .save_safetensors(&weights)
        .map_err(|e| Error::InvalidConfig(e.to_string()).in_file(&weights))
}

/// Whether `dir/config.json` names a whole `UNetMotionModel` (`_class_name`) rather than a
/// `MotionAdapter`.
pub fn is_unet_motion_folder(dir: &Path) -> Result<bool> {
    let path = dir.join("config.json");
    let json: serde_json::Value = nn::read_json_config(&path)?;
    Ok(json.get("_class_name").and_then(|v| v.as_str()) == Some("UNetMotionModel"))
}

/// Writes trained motion modules (`params` from [`UNetMotionModel::init_motion_modules`]) as a
/// diffusers `MotionAdapter` folder: `config.json` (`config`, with `_class_name`) and
/// `diffusion_pytorch_model.safetensors`, each written atomically. The folder loads with
/// [`UNetMotionModel::from_unet2d`] here and with `MotionAdapter.from_pretrained` in diffusers.
pub fn save_motion_adapter(
    params: &Parameters,
    config: &MotionAdapterConfig,
    dir: &Path,
) -> Result<()> {
    let mut json = serde_json::to_value(config)
        .map_err(|e| Error::InvalidConfig(format!("cannot write the adapter config: {e}")))?;
    json["_class_name"] = serde_json::Value::from("MotionAdapter");
    write_model_folder(dir, &json, params)
}
