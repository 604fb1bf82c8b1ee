//! Hostile `config.json` files: every numeric field of the shipped models' configs set to 0,
//! -1, 2^31, 2^63, 1e300, a string or a list must load without a panic, and the huge values and
//! wrong types must be refused with an error naming the file and the field.

use std::path::{Path, PathBuf};

use brainrecon_nn::config_bounds::hostile::problems;
use candle_core::{DType, Device};
use serde_json::{json, Value};

use crate::clip::ClipTextConfig;
use crate::clip_model::ClipModelConfig;
use crate::motion::MotionAdapterConfig;
use crate::scheduler::SchedulerConfig;
use crate::unet::{UNet2DConditionConfig, UNet2DConditionModel};
use crate::unet_motion::UNetMotionConfig;
use crate::vae::{AutoencoderKL, AutoencoderKLConfig};

fn shipped(rel: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(rel);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Writes `value` to a fresh `config.json` and runs `load` on its path; an error that does not
/// name the file is reported as such (so it never names the field either).
fn via_file<T, E: std::fmt::Display>(
    value: &Value,
    load: impl Fn(&Path) -> Result<T, E>,
) -> Result<T, String> {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("config.json");
    std::fs::write(&path, value.to_string()).unwrap();
    load(&path).map_err(|e| {
        let e = e.to_string();
        match e.contains(&path.display().to_string()) {
            true => e,
            false => format!("error without the file name: {e}"),
        }
    })
}

fn assert_clean(found: Vec<String>) {
    assert!(
        found.is_empty(),
        "{} problems:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn unet_config_fields_are_bounded_and_the_model_builds_when_accepted() {
    let load = |v: &Value| {
        let cfg = via_file(v, UNet2DConditionConfig::from_file)?;
        // What passes validation must also build (small sizes only: the shipped U-Net).
        brainrecon_nn::init::init_parameters(
            |vb| UNet2DConditionModel::new(vb, &cfg),
            1,
            DType::F32,
            &Device::Cpu,
        )
        .map(drop)
        .map_err(|e| e.to_string())
    };
    assert_clean(problems(
        &shipped("shapes-ldm/unet/config.json"),
        &[],
        &load,
    ));
}

#[test]
fn vae_config_fields_are_bounded_and_the_model_builds_when_accepted() {
    let load = |v: &Value| {
        let cfg = via_file(v, AutoencoderKLConfig::from_file)?;
        brainrecon_nn::init::init_parameters(
            |vb| AutoencoderKL::new(vb, &cfg),
            1,
            DType::F32,
            &Device::Cpu,
        )
        .map(drop)
        .map_err(|e| e.to_string())
    };
    assert_clean(problems(&shipped("shapes-ldm/vae/config.json"), &[], &load));
}

#[test]
fn text_encoder_and_scheduler_config_fields_are_bounded() {
    let text = |v: &Value| via_file(v, ClipTextConfig::from_file).map(drop);
    // transformers' own keys this encoder does not read; an `eos_token_id` no token has only
    // moves the pooled position to 0 (the CLIPModel loader compares ids with the tokenizer).
    let unread = [
        "bos_token_id",
        "pad_token_id",
        "projection_dim",
        "eos_token_id",
    ];
    let text_config = shipped("shapes-ldm/text_encoder/config.json");
    assert_clean(problems(&text_config, &unread, &text));
    let scheduler = |v: &Value| via_file(v, SchedulerConfig::from_file).map(drop);
    let config = shipped("shapes-ldm/scheduler/scheduler_config.json");
    assert_clean(problems(&config, &[], &scheduler));
}

#[test]
fn motion_config_fields_are_bounded() {
    let load = |v: &Value| via_file(v, UNetMotionConfig::from_file).map(drop);
    let config = shipped("shapes-motion/config.json");
    assert_clean(problems(&config, &[], &load));
    let motion = UNetMotionConfig::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/shapes-motion/config.json"),
    )
    .unwrap();
    let adapter = serde_json::to_value(motion.adapter_config()).unwrap();
    let load = |v: &Value| via_file(v, MotionAdapterConfig::from_file).map(drop);
    assert_clean(problems(&adapter, &[], &load));
}

#[test]
fn clip_model_config_fields_are_bounded() {
    let mut text = shipped("shapes-ldm/text_encoder/config.json");
    text.as_object_mut().unwrap().remove("projection_dim");
    let config = json!({
        "model_type": "clip",
        "projection_dim": 64,
        "text_config": text,
        "vision_config": {
            "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_channels": 3, "image_size": 32, "patch_size": 8,
            "layer_norm_eps": 1e-5
        }
    });
    let load = |v: &Value| via_file(v, ClipModelConfig::from_file).map(drop);
    let unread = ["bos_token_id", "pad_token_id", "eos_token_id"];
    assert_clean(problems(&config, &unread, &load));
}

#[test]
fn the_issue_examples_are_refused_with_file_field_expected_and_found() {
    let mut config = shipped("shapes-ldm/unet/config.json");
    config["norm_num_groups"] = json!(0);
    let e = via_file(&config, UNet2DConditionConfig::from_file).unwrap_err();
    assert!(e.contains("config.json"), "{e}");
    assert!(
        e.contains("norm_num_groups: expected an integer in 1..=1024, found 0"),
        "{e}"
    );
    config["norm_num_groups"] = json!(8);
    config["downsample_padding"] = json!(2147483648u64);
    let e = via_file(&config, UNet2DConditionConfig::from_file).unwrap_err();
    assert!(
        e.contains("downsample_padding: expected an integer in 0..=1, found 2147483648"),
        "{e}"
    );
    config["downsample_padding"] = json!("1");
    let e = via_file(&config, UNet2DConditionConfig::from_file).unwrap_err();
    assert!(e.contains("downsample_padding: invalid type"), "{e}");
}

#[test]
fn scheduler_configs_built_in_code_are_bounded_too() {
    let config = SchedulerConfig {
        num_train_timesteps: 1 << 40,
        ..SchedulerConfig::default()
    };
    let e = config.betas().unwrap_err().to_string();
    assert!(e.contains("num_train_timesteps: expected"), "{e}");
    let config = SchedulerConfig {
        beta_end: f64::NAN,
        ..SchedulerConfig::default()
    };
    assert!(config.betas().unwrap_err().to_string().contains("beta_end"));
}
