//! Golden tests of the motion U-Net (`unet_motion`) and the video pipeline (`VideoDiffusion`)
//! against diffusers 0.42.1's `UNetMotionModel`, `UNetMotionModel.from_unet2d` and
//! `AnimateDiffPipeline` (torch 2.15.0, CPU), on tiny random configurations whose motion modules
//! have every parameter random (`proj_out` included), so that a missing, misplaced or wrong
//! module changes the output.
//!
//! Fixtures (committed; regenerate with `tools/fixtures/unet_motion.py`) live in
//! `tests/fixtures/unet_motion/`. Model references ran in float64 on the float16-stored weights.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use brainrecon_diffusion::motion::{
    original_motion_name, LayersPerBlock, MotionAdapter, MotionAdapterConfig,
};
use brainrecon_diffusion::pipeline::{
    Conditioning, SampleOptions, StableDiffusion, VideoDiffusion,
};
use brainrecon_diffusion::scheduler::SchedulerKind;
use brainrecon_diffusion::unet::{
    OneOrMany, SpatialAttention, UNet2DConditionConfig, UNet2DConditionModel,
};
use brainrecon_diffusion::unet_motion::{save_unet_motion, UNetMotionConfig, UNetMotionModel};
use brainrecon_nn::layers::mmaped_var_builder;
use brainrecon_nn::optim::AdamW;
use brainrecon_nn::params::Parameters;
use brainrecon_nn::rng::{NoiseSource, SeededNoise};
use brainrecon_nn::Error;
use brainrecon_testkit::copy_dir;
use candle_core::{DType, Device, Tensor, Var};

const TOL: f32 = 2e-5;

fn dir() -> PathBuf {
    common::fixtures().join("unet_motion")
}

fn tiny_sd() -> PathBuf {
    common::fixtures().join("tiny-sd")
}

fn load_tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
}

fn io(file: &str) -> HashMap<String, Tensor> {
    load_tensors(&dir().join(file))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    common::max_abs_diff(a, b)
}

fn motion_unet() -> UNetMotionModel {
    UNetMotionModel::from_pretrained(&dir().join("motion_unet"), DType::F32, &Device::Cpu).unwrap()
}

/// The image U-Net of the motion U-Net's folder (the same tensors, no motion modules).
fn image_part_of_motion_unet() -> UNet2DConditionModel {
    let folder = dir().join("motion_unet");
    let cfg = UNetMotionConfig::from_file(&folder.join("config.json")).unwrap();
    let vb = mmaped_var_builder(
        &[folder.join("diffusion_pytorch_model.safetensors")],
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    UNet2DConditionModel::new(vb, &cfg.unet_config().unwrap()).unwrap()
}

/// The image U-Net on every frame of [b, c, f, h, w] (context repeated per frame).
fn per_frame(unet: &UNet2DConditionModel, sample: &Tensor, t: &Tensor, ctx: &Tensor) -> Tensor {
    let (b, c, f, h, w) = sample.dims5().unwrap();
    let rows = sample
        .permute((0, 2, 1, 3, 4))
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((b * f, c, h, w))
        .unwrap();
    let (_, l, d) = ctx.dims3().unwrap();
    let ctx = ctx
        .unsqueeze(1)
        .unwrap()
        .broadcast_as((b, f, l, d))
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((b * f, l, d))
        .unwrap();
    let t = if t.dims() == [b] && b > 1 {
        t.unsqueeze(1)
            .unwrap()
            .broadcast_as((b, f))
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape(b * f)
            .unwrap()
    } else {
        t.clone()
    };
    let out = unet.forward(&rows, &t, &ctx).unwrap();
    out.reshape((b, f, c, h, w))
        .unwrap()
        .permute((0, 2, 1, 3, 4))
        .unwrap()
        .contiguous()
        .unwrap()
}

#[test]
fn motion_unet_folder_matches_diffusers() {
    let model = motion_unet();
    let image = image_part_of_motion_unet();
    let io = io("motion_unet_io.safetensors");
    for case in ["f8_b2", "f16", "f24", "flat"] {
        let get = |k: &str| io[&format!("{case}.{k}")].clone();
        let (x, t, ctx, want) = (
            get("sample"),
            get("timesteps"),
            get("context"),
            get("output"),
        );
        let got = model.forward(&x, &t, &ctx).unwrap();
        let err = max_abs_diff(&got, &want);
        // The motion modules' share of the output: the image model alone is far from it.
        let without = max_abs_diff(&per_frame(&image, &x, &t, &ctx), &want);
        eprintln!(
            "motion_unet {case} {:?}: max abs error {err:.3e} (|out| max {:.3}, image U-Net \
             per frame is {without:.3e} off)",
            x.dims(),
            common::max_abs(&want)
        );
        assert!(without > 1e-2, "{case}: motion modules have no effect");
        assert!(err < TOL, "{case}: max abs error {err} >= {TOL}");
    }
    // The layout diffusers built: modules after each resnet pair, mid block, depths (1, 2).
    let names: Vec<String> = model.motion_modules().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "down_blocks.0.motion_modules.0",
            "down_blocks.1.motion_modules.0",
            "mid_block.motion_modules.0",
            "up_blocks.0.motion_modules.0",
            "up_blocks.0.motion_modules.1",
            "up_blocks.1.motion_modules.0",
            "up_blocks.1.motion_modules.1",
        ]
    );
    assert_eq!(
        model.unet.up_blocks[0].motion_modules[0]
            .transformer_blocks
            .len(),
        2
    );
    assert_eq!(model.max_frames(), 24);
}

/// The context may also come repeated per frame ([b·f, L, D], as diffusers takes it), and one
/// timestep may serve both clips.
#[test]
fn context_per_frame_and_shared_timestep() {
    let model = motion_unet();
    let io = io("motion_unet_io.safetensors");
    let x = &io["f8_b2.sample"];
    let ctx = &io["f8_b2.context"];
    let per_clip = model
        .forward(x, &Tensor::new(&[300f32], &Device::Cpu).unwrap(), ctx)
        .unwrap();
    let repeated = ctx
        .unsqueeze(1)
        .unwrap()
        .broadcast_as((2, 8, 5, 8))
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((16, 5, 8))
        .unwrap();
    let t = Tensor::new(&[300f32, 300.0], &Device::Cpu).unwrap();
    let per_frame = model.forward(x, &t, &repeated).unwrap();
    assert_eq!(max_abs_diff(&per_clip, &per_frame), 0.0);
}

#[test]
fn from_unet2d_matches_diffusers() {
    let model = UNetMotionModel::from_unet2d(
        &tiny_sd().join("unet"),
        &dir().join("adapter_sd"),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    // diffusers builds the modules with the U-Net's 8 groups, not the adapter's 4.
    assert_eq!(model.adapter_config.motion_norm_num_groups, 8);
    let io = io("from_unet2d_io.safetensors");
    let got = model
        .forward(&io["sample"], &io["timesteps"], &io["context"])
        .unwrap();
    let err = max_abs_diff(&got, &io["output"]);
    eprintln!(
        "from_unet2d: max abs error {err:.3e} (|out| max {:.3})",
        common::max_abs(&io["output"])
    );
    assert!(err < TOL, "max abs error {err}");
}

/// Numbers compared as numbers (diffusers writes `1` where serde writes `1.0`).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Every tensor of tiny-sd's U-Net and of `adapter_sd` as f32 variables (through `edit`):
/// the parameters of a whole motion U-Net.
fn unet_and_adapter_params(edit: impl Fn(&str, Tensor) -> Tensor) -> Parameters {
    let unet = tiny_sd()
        .join("unet")
        .join("diffusion_pytorch_model.safetensors");
    let adapter = dir()
        .join("adapter_sd")
        .join("diffusion_pytorch_model.safetensors");
    let vars = load_tensors(&unet)
        .into_iter()
        .chain(load_tensors(&adapter))
        .map(|(name, t)| {
            let t = edit(&name, t.to_dtype(DType::F32).unwrap());
            (name, Var::from_tensor(&t).unwrap())
        });
    Parameters::from_vars(vars).unwrap()
}

#[test]
fn saved_motion_unet_is_diffusers_from_unet2d_folder() {
    // The config: every field written equals diffusers' `UNetMotionModel.from_unet2d` config.
    let unet_config =
        UNet2DConditionConfig::from_file(&tiny_sd().join("unet").join("config.json")).unwrap();
    let adapter_config =
        MotionAdapterConfig::from_file(&dir().join("adapter_sd").join("config.json")).unwrap();
    let (json, _) = UNetMotionConfig::from_unet2d(&unet_config, &adapter_config).unwrap();
    let text =
        std::fs::read_to_string(dir().join("from_unet2d_config").join("config.json")).unwrap();
    let diffusers: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (field, ours) in json.as_object().unwrap() {
        let theirs = &diffusers[field.as_str()];
        assert!(
            same_json(ours, theirs),
            "`{field}`: we write {ours}, diffusers {theirs}"
        );
    }

    // The weights: the U-Net's and the adapter's tensors saved as one folder load back
    // (every tensor checked) and give diffusers' from_unet2d output.
    let params = unet_and_adapter_params(|_, t| t);
    let tmp = tempfile::tempdir().unwrap();
    save_unet_motion(&params, &unet_config, &adapter_config, tmp.path()).unwrap();
    let model = UNetMotionModel::from_pretrained(tmp.path(), DType::F32, &Device::Cpu).unwrap();
    let io = io("from_unet2d_io.safetensors");
    let got = model
        .forward(&io["sample"], &io["timesteps"], &io["context"])
        .unwrap();
    let err = max_abs_diff(&got, &io["output"]);
    assert!(err < TOL, "max abs error {err}");

    // A set of parameters that is not a whole motion U-Net is refused.
    let partial = Parameters::from_vars(
        params
            .vars()
            .into_iter()
            .filter(|(name, _)| !name.starts_with("conv_in.")),
    )
    .unwrap();
    let err = save_unet_motion(
        &partial,
        &unet_config,
        &adapter_config,
        &tmp.path().join("x"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("conv_in."), "{err}");
    assert!(!tmp.path().join("x").exists());
}

#[test]
fn a_motion_unet_folder_replaces_the_pipelines_unet() {
    let sd = StableDiffusion::load(tiny_sd().to_str().unwrap(), DType::F32, &Device::Cpu).unwrap();
    let unet_config = sd.unet.config.clone();
    let adapter_config =
        MotionAdapterConfig::from_file(&dir().join("adapter_sd").join("config.json")).unwrap();
    // A tuned U-Net: conv_in changed, so the pipeline must use the folder's U-Net.
    let params = unet_and_adapter_params(|name, t| match name {
        "conv_in.bias" => (t + 0.5).unwrap(),
        _ => t,
    });
    let tmp = tempfile::tempdir().unwrap();
    save_unet_motion(&params, &unet_config, &adapter_config, tmp.path()).unwrap();
    let vd = VideoDiffusion::with_adapter(sd, tmp.path()).unwrap();
    let bias = vd.unet.unet.conv_in.bias.as_ref().unwrap();
    let image_bias = vd.sd.unet.conv_in.bias.as_ref().unwrap();
    let shift = (bias - image_bias)
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        (shift - 0.5).abs() < 1e-6,
        "conv_in.bias shifted by {shift}"
    );

    // A motion U-Net for another context width (diffusers' folder, width 8 against tiny-sd's
    // 32) names its config and the field.
    let sd = StableDiffusion::load(tiny_sd().to_str().unwrap(), DType::F32, &Device::Cpu).unwrap();
    let err = VideoDiffusion::with_adapter(sd, &dir().join("motion_unet"))
        .err()
        .expect("a motion U-Net of another width must be refused")
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("cross_attention_dim"),
        "{err}"
    );
}

#[test]
fn too_many_frames_is_an_error() {
    let model = motion_unet();
    let x = Tensor::zeros((1, 4, 25, 4, 6), DType::F32, &Device::Cpu).unwrap();
    let t = Tensor::new(&[10f32], &Device::Cpu).unwrap();
    let ctx = Tensor::zeros((1, 5, 8), DType::F32, &Device::Cpu).unwrap();
    match model.forward(&x, &t, &ctx).unwrap_err() {
        Error::InvalidInput { name, msg } => {
            assert_eq!(name, "sample");
            assert!(
                msg.contains("25 frames") && msg.contains("motion_max_seq_length"),
                "{msg}"
            );
        }
        other => panic!("expected an input error, got {other:?}"),
    }
    let x4 = Tensor::zeros((1, 4, 4, 6), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        model.forward(&x4, &t, &ctx),
        Err(Error::InvalidInput { name: "sample", .. })
    ));
}

fn edit_config(dir: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, v.to_string()).unwrap();
}

/// An adapter that does not fit the U-Net names the adapter's config.json and the field.
#[test]
fn adapter_that_does_not_fit_names_file_and_field() {
    let cases: [(&str, serde_json::Value, &str); 4] = [
        (
            "block_out_channels",
            serde_json::json!([16, 64]),
            "block_out_channels",
        ),
        (
            "block_out_channels",
            serde_json::json!([16, 32, 32]),
            "3 blocks",
        ),
        (
            "motion_layers_per_block",
            serde_json::json!(2),
            "motion_layers_per_block",
        ),
        (
            "motion_mid_block_layers_per_block",
            serde_json::json!(2),
            "motion_mid_block_layers",
        ),
    ];
    for (field, value, expect) in cases {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&dir().join("adapter_sd"), tmp.path());
        edit_config(tmp.path(), |v| {
            v[field] = value.clone();
            if field == "block_out_channels" && value.as_array().unwrap().len() == 3 {
                v["motion_num_attention_heads"] = serde_json::json!([2, 4, 4]);
            }
        });
        let err = UNetMotionModel::from_unet2d(
            &tiny_sd().join("unet"),
            tmp.path(),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap_err()
        .to_string();
        eprintln!("{field} = {value}: {err}");
        assert!(err.contains("config.json") && err.contains(expect), "{err}");
    }
}

/// Tensors the config does not use are an error naming the file (an adapter whose config drops
/// the mid-block module; a motion U-Net with a stray tensor).
#[test]
fn unused_checkpoint_tensors_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&dir().join("adapter_sd"), tmp.path());
    edit_config(tmp.path(), |v| {
        v["use_motion_mid_block"] = serde_json::json!(false)
    });
    let err = UNetMotionModel::from_unet2d(
        &tiny_sd().join("unet"),
        tmp.path(),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    eprintln!("{err}");
    assert!(
        err.contains("diffusion_pytorch_model.safetensors")
            && err.contains("not used")
            && err.contains("mid_block.motion_modules.0."),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&dir().join("motion_unet"), tmp.path());
    let file = tmp.path().join("diffusion_pytorch_model.safetensors");
    let mut tensors = load_tensors(&file);
    tensors.insert(
        "down_blocks.0.motion_modules.1.proj_in.weight".into(),
        Tensor::zeros((4, 4), DType::F32, &Device::Cpu).unwrap(),
    );
    brainrecon_testkit::tensor::save_safetensors(&tensors, &file);
    let err = UNetMotionModel::from_pretrained(tmp.path(), DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not used") && err.contains("down_blocks.0.motion_modules.1.proj_in.weight"),
        "{err}"
    );
    // The folder as saved loads (every tensor read).
    UNetMotionModel::from_pretrained(&dir().join("motion_unet"), DType::F32, &Device::Cpu).unwrap();
}

#[test]
fn unsupported_motion_config_names_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&dir().join("motion_unet"), tmp.path());
    edit_config(tmp.path(), |v| v["mid_block_layers"] = serde_json::json!(2));
    let err = UNetMotionModel::from_pretrained(tmp.path(), DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("mid_block_layers"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Original AnimateDiff checkpoints
// ---------------------------------------------------------------------------------------------

#[test]
fn original_names_follow_the_conversion_rules() {
    let cases = [
        (
            "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight",
            "down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q.weight",
        ),
        (
            "up_blocks.3.motion_modules.2.temporal_transformer.transformer_blocks.0.attention_blocks.1.to_out.0.bias",
            "up_blocks.3.motion_modules.2.transformer_blocks.0.attn2.to_out.0.bias",
        ),
        (
            "mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder.pe",
            "mid_block.motion_modules.0.transformer_blocks.0.pos_embed.pe",
        ),
        (
            "down_blocks.1.motion_modules.1.temporal_transformer.transformer_blocks.0.norms.1.weight",
            "down_blocks.1.motion_modules.1.transformer_blocks.0.norm2.weight",
        ),
        (
            "down_blocks.1.motion_modules.1.temporal_transformer.transformer_blocks.0.ff_norm.bias",
            "down_blocks.1.motion_modules.1.transformer_blocks.0.norm3.bias",
        ),
        (
            "down_blocks.1.motion_modules.1.temporal_transformer.transformer_blocks.0.ff.net.0.proj.weight",
            "down_blocks.1.motion_modules.1.transformer_blocks.0.ff.net.0.proj.weight",
        ),
        (
            "down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight",
            "down_blocks.0.motion_modules.0.proj_in.weight",
        ),
    ];
    for (original, diffusers) in cases {
        assert_eq!(original_motion_name(original).as_deref(), Some(diffusers));
    }
    assert_eq!(
        original_motion_name("down_blocks.0.resnets.0.conv1.weight"),
        None
    );
}

/// guoyww-style files (safetensors and a torch pickle) of the motion U-Net's modules load to
/// the same modules as the diffusers folder, and the U-Net built from them matches diffusers.
#[test]
fn original_checkpoints_load_through_the_renaming() {
    let reference = motion_unet();
    let io = io("motion_unet_io.safetensors");
    // Heads and groups are not in the tensors: the motion U-Net's (2 heads, 2 groups).
    let base = MotionAdapterConfig {
        motion_num_attention_heads: OneOrMany::One(2),
        motion_norm_num_groups: 2,
        ..MotionAdapterConfig::default()
    };
    for file in ["original.safetensors", "original.ckpt"] {
        let (adapter, config) =
            MotionAdapter::from_original(&dir().join(file), &base, DType::F32, &Device::Cpu)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(config.block_out_channels, vec![4, 8]);
        assert_eq!(config.motion_max_seq_length, 24);
        assert!(config.use_motion_mid_block);
        assert_eq!(
            config.motion_transformer_layers_per_block,
            LayersPerBlock::Many(vec![OneOrMany::One(1), OneOrMany::One(2)])
        );
        let model = UNetMotionModel::from_parts(image_part_of_motion_unet(), adapter).unwrap();
        let x = &io["f16.sample"];
        let got = model
            .forward(x, &io["f16.timesteps"], &io["f16.context"])
            .unwrap();
        let same = reference
            .forward(x, &io["f16.timesteps"], &io["f16.context"])
            .unwrap();
        assert_eq!(
            max_abs_diff(&got, &same),
            0.0,
            "{file}: differs from the diffusers folder"
        );
        let err = max_abs_diff(&got, &io["f16.output"]);
        eprintln!("{file}: max abs error {err:.3e} against diffusers");
        assert!(err < TOL);
    }
}

#[test]
fn foreign_tensors_in_an_original_checkpoint_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("mm.safetensors");
    let mut tensors = load_tensors(&dir().join("original.safetensors"));
    tensors.insert(
        "down_blocks.0.resnets.0.conv1.weight".into(),
        Tensor::zeros((4, 4), DType::F32, &Device::Cpu).unwrap(),
    );
    brainrecon_testkit::tensor::save_safetensors(&tensors, &file);
    let base = MotionAdapterConfig::default();
    let err = MotionAdapter::from_original(&file, &base, DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mm.safetensors") && err.contains("resnets.0.conv1"),
        "{err}"
    );
    let err =
        MotionAdapter::from_original(&tmp.path().join("mm.txt"), &base, DType::F32, &Device::Cpu)
            .unwrap_err()
            .to_string();
    assert!(err.contains("mm.txt"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Fresh modules, training, sparse-causal attention
// ---------------------------------------------------------------------------------------------

fn tiny_sd_unet() -> UNet2DConditionModel {
    UNet2DConditionModel::from_pretrained(&tiny_sd().join("unet"), DType::F32, &Device::Cpu)
        .unwrap()
}

fn tiny_adapter_config() -> MotionAdapterConfig {
    MotionAdapterConfig {
        block_out_channels: vec![16, 32],
        motion_layers_per_block: OneOrMany::One(1),
        motion_num_attention_heads: OneOrMany::Many(vec![2, 4]),
        motion_max_seq_length: 16,
        ..MotionAdapterConfig::default()
    }
}

fn clip_inputs(frames: usize, seed: u64) -> (Tensor, Tensor, Tensor) {
    let mut noise = SeededNoise::new(seed);
    let x = noise
        .gaussian(&[1, 4, frames, 8, 6], &Device::Cpu, DType::F32)
        .unwrap();
    let ctx = noise
        .gaussian(&[1, 7, 32], &Device::Cpu, DType::F32)
        .unwrap();
    (x, Tensor::new(&[400f32], &Device::Cpu).unwrap(), ctx)
}

/// Untrained modules (zero proj_out) leave the image U-Net exactly as it is, frame by frame;
/// a few AdamW steps on the motion parameters change them (and the output) and nothing else;
/// the trained modules save as an adapter folder that loads back.
#[test]
fn fresh_motion_modules_reduce_to_the_image_model_and_train_alone() {
    let image = tiny_sd_unet();
    let config = tiny_adapter_config();
    let (model, params) = UNetMotionModel::init_motion_modules(tiny_sd_unet(), &config, 5).unwrap();
    assert!(params
        .names()
        .iter()
        .all(|n| n.contains(".motion_modules.")));
    assert!(params
        .get("mid_block.motion_modules.0.proj_out.weight")
        .is_some());
    let (x, t, ctx) = clip_inputs(8, 1);
    let image_out = per_frame(&image, &x, &t, &ctx);
    // Inference copy of the untrained modules: exactly the image model.
    let snapshot = brainrecon_nn::layers::tensors_var_builder(
        params.tensors().unwrap(),
        DType::F32,
        &Device::Cpu,
    );
    let fitted = model.adapter_config.clone();
    let adapter = MotionAdapter::new(snapshot, &fitted).unwrap();
    let inference = UNetMotionModel::from_parts(tiny_sd_unet(), adapter).unwrap();
    assert_eq!(
        max_abs_diff(&inference.forward(&x, &t, &ctx).unwrap(), &image_out),
        0.0
    );
    // The trainable model takes the differentiable kernels: equal up to their rounding.
    let before = model.forward(&x, &t, &ctx).unwrap();
    assert!(before.track_op());
    let err = max_abs_diff(&before, &image_out);
    eprintln!("trainable untrained model vs image U-Net per frame: {err:.3e}");
    assert!(err < 1e-5);

    let target = SeededNoise::new(2)
        .gaussian(before.dims(), &Device::Cpu, DType::F32)
        .unwrap();
    let frozen_values = model
        .unet
        .conv_in
        .weight
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let mut opt = AdamW::with_defaults(1e-3).unwrap();
    let mut losses = Vec::new();
    for _ in 0..4 {
        let out = model.forward(&x, &t, &ctx).unwrap();
        let loss = (out - &target).unwrap().sqr().unwrap().mean_all().unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
        let grads = loss.backward().unwrap();
        opt.step(&params, &grads).unwrap();
    }
    eprintln!("losses {losses:?}");
    assert!(
        losses[3] < losses[0],
        "training does not lower the loss: {losses:?}"
    );
    let out_w = params
        .get("down_blocks.0.motion_modules.0.proj_out.weight")
        .unwrap();
    assert!(common::max_abs(out_w.as_tensor()) > 0.0);
    // The image U-Net's weights are constants: untouched.
    let after = model
        .unet
        .conv_in
        .weight
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(frozen_values, after);
    let trained = model.forward(&x, &t, &ctx).unwrap();
    assert!(max_abs_diff(&trained, &before) > 1e-4);

    // Saved as a MotionAdapter folder, the trained modules load back onto the image U-Net.
    let tmp = tempfile::tempdir().unwrap();
    brainrecon_diffusion::unet_motion::save_motion_adapter(&params, &fitted, tmp.path()).unwrap();
    let reloaded = UNetMotionModel::from_unet2d(
        &tiny_sd().join("unet"),
        tmp.path(),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let err = max_abs_diff(&reloaded.forward(&x, &t, &ctx).unwrap(), &trained);
    assert!(err < 1e-5, "reloaded adapter differs by {err}");
}

fn frame(x: &Tensor, i: usize) -> Tensor {
    x.narrow(2, i, 1).unwrap()
}

/// MinD-Video's sparse-causal attention: frame 0 and frame 1 do not see later frames, frame 2
/// sees frame 0, frame 0 is unchanged from per-frame attention; off, the model is unchanged.
#[test]
fn sparse_causal_attention_is_causal() {
    let (model, _) =
        UNetMotionModel::init_motion_modules(tiny_sd_unet(), &tiny_adapter_config(), 5).unwrap();
    let causal = model
        .clone()
        .with_spatial_attention(SpatialAttention::SparseCausal);
    let (x, t, ctx) = clip_inputs(6, 3);
    let base = causal.forward(&x, &t, &ctx).unwrap();
    // Later frames replaced: frames 0 and 1 keep their outputs exactly.
    let later = SeededNoise::new(9)
        .gaussian(&[1, 4, 4, 8, 6], &Device::Cpu, DType::F32)
        .unwrap();
    let x2 = Tensor::cat(&[&x.narrow(2, 0, 2).unwrap(), &later], 2).unwrap();
    let changed = causal.forward(&x2, &t, &ctx).unwrap();
    for i in 0..2 {
        assert_eq!(
            max_abs_diff(&frame(&base, i), &frame(&changed, i)),
            0.0,
            "frame {i}"
        );
    }
    assert!(max_abs_diff(&frame(&base, 3), &frame(&changed, 3)) > 1e-3);
    // Frame 0 changed: frame 2 (attending to frames 0 and 1) changes.
    let first = SeededNoise::new(10)
        .gaussian(&[1, 4, 1, 8, 6], &Device::Cpu, DType::F32)
        .unwrap();
    let x3 = Tensor::cat(&[&first, &x.narrow(2, 1, 5).unwrap()], 2).unwrap();
    let moved = causal.forward(&x3, &t, &ctx).unwrap();
    assert!(max_abs_diff(&frame(&base, 2), &frame(&moved, 2)) > 1e-3);
    // Frame 0 attends to itself (twice): as with per-frame attention; other frames differ.
    let plain = model.forward(&x, &t, &ctx).unwrap();
    let err0 = max_abs_diff(&frame(&base, 0), &frame(&plain, 0));
    assert!(
        err0 < 1e-5,
        "frame 0 differs from per-frame attention by {err0}"
    );
    assert!(max_abs_diff(&frame(&base, 1), &frame(&plain, 1)) > 1e-3);
    // Off again: back to the model.
    let off = causal.with_spatial_attention(SpatialAttention::PerFrame);
    assert_eq!(
        max_abs_diff(&off.forward(&x, &t, &ctx).unwrap(), &plain),
        0.0
    );
}

// ---------------------------------------------------------------------------------------------
// AnimateDiffPipeline
// ---------------------------------------------------------------------------------------------

#[test]
fn video_pipeline_matches_animatediff_pipeline() {
    let settings = common::read_json("unet_motion/pipeline.json");
    let sd = StableDiffusion::load(tiny_sd().to_str().unwrap(), DType::F32, &Device::Cpu).unwrap();
    let video = VideoDiffusion::with_adapter(sd, &dir().join("adapter_sd")).unwrap();
    let prompt = settings["prompt"].as_str().unwrap();
    let negative = settings["negative_prompt"].as_str().unwrap();
    // The negative context is given as a tensor (as the video route gives the mean fMRI's).
    let context = Conditioning {
        cond: video.sd.encode_text(&[prompt]).unwrap(),
        uncond: Some(video.sd.encode_text(&[negative]).unwrap()),
    };
    let t = io("pipeline.safetensors");
    let options = SampleOptions {
        steps: settings["steps"].as_u64().unwrap() as usize,
        guidance: settings["guidance"].as_f64().unwrap(),
        scheduler: SchedulerKind::Ddim { eta: 0.0 },
    };
    let mut steps = 0;
    let latents = video
        .generate_clip_from_latent(
            &t["latents_in"],
            &context,
            &options,
            &mut SeededNoise::new(0),
            &mut |_| steps += 1,
        )
        .unwrap();
    assert_eq!(steps, options.steps);
    let err = max_abs_diff(&latents, &t["latents_out"]);
    eprintln!(
        "pipeline latents: max abs error {err:.3e} (|max| {:.3})",
        common::max_abs(&t["latents_out"])
    );
    assert!(err < 1e-4, "latents: {err}");
    let frames = video.decode_clip(&latents).unwrap();
    let err = max_abs_diff(&frames, &t["frames"]);
    eprintln!(
        "pipeline frames {:?}: max abs error {err:.3e}",
        frames.dims()
    );
    assert!(err < 1e-4, "frames: {err}");
    // Without guidance the result differs: the negative context is used.
    let unguided = SampleOptions {
        guidance: 1.0,
        ..options
    };
    let other = video
        .generate_clip_from_latent(
            &t["latents_in"],
            &context,
            &unguided,
            &mut SeededNoise::new(0),
            &mut |_| {},
        )
        .unwrap();
    assert!(max_abs_diff(&other, &t["latents_out"]) > 1e-2);
}

/// `generate_clip` draws x_T from the seeded noise: the same seed gives the same clip, and it
/// is what generating from that draw gives.
#[test]
fn generate_clip_is_seeded() {
    use brainrecon_diffusion::pipeline::ClipOptions;
    let adapter = dir().join("adapter_sd");
    let video = VideoDiffusion::load(
        tiny_sd().to_str().unwrap(),
        adapter.to_str().unwrap(),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let missing = dir().join("no-such-adapter");
    let err = VideoDiffusion::load(
        tiny_sd().to_str().unwrap(),
        missing.to_str().unwrap(),
        DType::F32,
        &Device::Cpu,
    )
    .err()
    .expect("a missing adapter is an error")
    .to_string();
    assert!(err.contains("no-such-adapter"), "{err}");
    let context = video.sd.encode_prompts(&["a square"], None, 3.0).unwrap();
    let options = ClipOptions {
        frames: 4,
        height: 16,
        width: 12,
        sample: SampleOptions {
            steps: 2,
            guidance: 3.0,
            scheduler: SchedulerKind::Ddim { eta: 0.0 },
        },
    };
    let a = video
        .generate_clip(&context, &options, &mut SeededNoise::new(4), &mut |_| {})
        .unwrap();
    let b = video
        .generate_clip(&context, &options, &mut SeededNoise::new(4), &mut |_| {})
        .unwrap();
    assert_eq!(a.frames.dims(), &[1, 4, 3, 16, 12]);
    assert_eq!(max_abs_diff(&a.frames, &b.frames), 0.0);
    let x_t = SeededNoise::new(4)
        .gaussian(&[1, 4, 4, 8, 6], &Device::Cpu, DType::F32)
        .unwrap();
    let direct = video
        .generate_clip_from_latent(
            &x_t,
            &context,
            &options.sample,
            &mut SeededNoise::new(99),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(max_abs_diff(&a.latents, &direct), 0.0);
    let too_long = ClipOptions {
        frames: 9,
        ..options
    };
    let err = video
        .generate_clip(&context, &too_long, &mut SeededNoise::new(4), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("9 frames") && err.contains("motion_max_seq_length"),
        "{err}"
    );
}
