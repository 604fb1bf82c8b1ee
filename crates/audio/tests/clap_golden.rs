//! CLAP against transformers 5.23 (`ClapFeatureExtractor`, `ClapModel`, `RobertaTokenizer`) on
//! tiny random-weight models; fixtures from tools/fixtures/clap.py (see its docstring).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use brainrecon_audio::clap::feature_extractor::{mel_filter_bank, MelScale};
use brainrecon_audio::clap::htsat::relative_position_index;
use brainrecon_audio::clap::{
    ClapConfig, ClapFeatureExtractor, ClapFeatureExtractorConfig, ClapModel, GivenChoices,
    Truncation,
};
use brainrecon_language::roberta::RobertaTokenizer;
use candle_core::{DType, Device, Tensor};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clap")
}

fn load(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// The largest absolute difference; panics above `tol` or on a shape mismatch.
fn check(what: &str, got: &Tensor, want: &Tensor, tol: f32) -> f32 {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes");
    let err = f32s(got)
        .iter()
        .zip(f32s(want))
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("{what}: max abs error {err:.3e}");
    assert!(err <= tol, "{what}: max abs error {err} > {tol}");
    err
}

fn extractor(truncation: Truncation) -> ClapFeatureExtractor {
    let mut c = ClapFeatureExtractorConfig::from_file(&fixtures().join("preprocessor_config.json"))
        .unwrap();
    c.truncation = truncation;
    ClapFeatureExtractor::new(c)
}

fn wave(features: &HashMap<String, Tensor>, name: &str) -> Vec<f32> {
    f32s(&features[&format!("wave.{name}")])
}

const CLIPS: [&str; 4] = ["chirp", "flat", "short", "long"];
/// Mel values are dB in about [−100, 40], where an f32 ulp is up to 7.6e-6 (a few ulps: the
/// fusion's bilinear shrink rounds differently; everything else is bit-exact today).
const MEL_TOL: f32 = 3e-5;

#[test]
fn mel_features_match_transformers() {
    let features = load(&fixtures().join("features.safetensors"));
    let choices = json("choices.json");
    let rand_trunc = extractor(Truncation::RandTrunc);
    let fusion = extractor(Truncation::Fusion);
    assert_eq!(rand_trunc.config.max_frames(), 51);
    for name in CLIPS {
        let w = wave(&features, name);
        let long = name == "long";
        // rand_trunc: Slaney filters, one channel, a crop of the long clip at the given offset
        let given: Vec<usize> = if long {
            vec![choices["rand_trunc_long"].as_u64().unwrap() as usize]
        } else {
            vec![]
        };
        let mut g = GivenChoices::new(given);
        let clip = rand_trunc.extract_clip(&w, &mut g).unwrap();
        assert_eq!((clip.channels, clip.longer, g.remaining()), (1, long, 0));
        let got = Tensor::from_vec(clip.mel, (1, clip.frames, clip.mels), &Device::Cpu).unwrap();
        let want = &features[&format!("mel.{name}.rand_trunc")];
        check(&format!("mel {name} rand_trunc"), &got, want, MEL_TOL);
        // fusion: HTK filters, four channels
        let given: Vec<usize> = if long {
            choices["fusion_long"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect()
        } else {
            vec![]
        };
        let mut g = GivenChoices::new(given);
        let clip = fusion.extract_clip(&w, &mut g).unwrap();
        assert_eq!((clip.channels, clip.longer, g.remaining()), (4, long, 0));
        let got = Tensor::from_vec(clip.mel, (4, clip.frames, clip.mels), &Device::Cpu).unwrap();
        let want = &features[&format!("mel.{name}.fusion")];
        let want = if long {
            want.clone()
        } else {
            want.repeat((4, 1, 1)).unwrap()
        };
        check(&format!("mel {name} fusion"), &got, &want, MEL_TOL);
    }
}

#[test]
fn the_silent_stretches_sit_at_the_floor() {
    // the flat clip: digital silence is 1e-10 power, −100 dB, in every bin
    let features = load(&fixtures().join("features.safetensors"));
    let mel = f32s(&features["mel.flat.rand_trunc"]);
    let first_frame = &mel[..64];
    assert!(first_frame.iter().all(|&v| v == -100.0), "{first_frame:?}");
    let fe = extractor(Truncation::RandTrunc);
    let mut g = GivenChoices::new([]);
    let clip = fe.extract_clip(&wave(&features, "flat"), &mut g).unwrap();
    assert!(clip.mel[..64].iter().all(|&v| v == -100.0));
}

#[test]
fn filter_banks_at_the_hub_defaults() {
    let features = load(&fixtures().join("features.safetensors"));
    for (name, slaney, scale) in [
        ("htk", false, MelScale::Htk),
        ("slaney", true, MelScale::Slaney),
    ] {
        let bank = mel_filter_bank(513, 64, 50.0, 14000.0, 48000, slaney, scale);
        let bank = &bank;
        let col = |m: usize| (0..513).map(move |k| bank[k * 64 + m]);
        let sums: Vec<f32> = (0..64).map(|m| col(m).sum::<f64>() as f32).collect();
        let sumsq: Vec<f32> = (0..64)
            .map(|m| col(m).map(|v| v * v).sum::<f64>() as f32)
            .collect();
        let argmax: Vec<i64> = (0..64)
            .map(|m| {
                col(m)
                    .enumerate()
                    .fold((0, f64::MIN), |b, (k, v)| if v > b.1 { (k, v) } else { b })
                    .0 as i64
            })
            .collect();
        let rel = |got: &[f32], key: &str| {
            let want = f32s(&features[key]);
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| ((a - b) / b.abs().max(1e-12)).abs())
                .fold(0f32, f32::max);
            println!("{key}: max rel error {err:.3e}");
            assert!(err < 1e-6, "{key}: {err}");
        };
        rel(&sums, &format!("filters.{name}.sum"));
        rel(&sumsq, &format!("filters.{name}.sumsq"));
        let want: Vec<i64> = features[&format!("filters.{name}.argmax")]
            .to_vec1()
            .unwrap();
        assert_eq!(argmax, want, "{name} peaks");
    }
}

fn stacked(features: &HashMap<String, Tensor>, names: &[&str], truncation: &str) -> Tensor {
    let mels: Vec<Tensor> = names
        .iter()
        .map(|n| {
            let m = &features[&format!("mel.{n}.{truncation}")];
            if m.dim(0).unwrap() == 1 && truncation == "fusion" {
                m.repeat((4, 1, 1)).unwrap()
            } else {
                m.clone()
            }
        })
        .collect();
    Tensor::stack(&mels, 0).unwrap()
}

fn flags(t: &Tensor) -> Vec<bool> {
    let v: Vec<u8> = t.flatten_all().unwrap().to_vec1().unwrap();
    v.into_iter().map(|x| x != 0).collect()
}

/// Embeddings are unit vectors of 16 values (errors ~2e-7 today); the pooled outputs are
/// O(1) (~1e-6); logits are scaled by up to 14.3 (~4e-6). A wrong mask, shift or position
/// id moves them by 1e-2 or more.
const EMBED_TOL: f32 = 2e-6;
const POOLED_TOL: f32 = 1e-5;
const LOGIT_TOL: f32 = 4e-5;

fn check_model(name: &str, truncation: &str) -> (ClapModel, HashMap<String, Tensor>) {
    let dir = fixtures().join(name);
    let model = ClapModel::load_dir(&dir, &Device::Cpu).unwrap();
    let expected = load(&dir.join("expected.safetensors"));
    let features = load(&fixtures().join("features.safetensors"));
    let input = stacked(&features, &CLIPS, truncation);
    let is_longer = flags(&expected["audio.is_longer"]);
    let ids = &expected["text.input_ids"];
    let mask = &expected["text.attention_mask"];
    let start = std::time::Instant::now();
    let audio = model.audio_model.forward(&input, &is_longer).unwrap();
    println!(
        "{name}: audio tower, batch of 4, {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    check(
        &format!("{name} audio pooled"),
        &audio.pooler_output,
        &expected["audio.pooled"],
        POOLED_TOL,
    );
    let text = model.text_model.forward(ids, Some(mask)).unwrap();
    check(
        &format!("{name} text pooled"),
        text.pooler_output.as_ref().unwrap(),
        &expected["text.pooled"],
        POOLED_TOL,
    );
    let out = model.forward(ids, Some(mask), &input, &is_longer).unwrap();
    check(
        &format!("{name} audio embeds"),
        &out.audio_embeds,
        &expected["audio.embeds"],
        EMBED_TOL,
    );
    check(
        &format!("{name} text embeds"),
        &out.text_embeds,
        &expected["text.embeds"],
        EMBED_TOL,
    );
    check(
        &format!("{name} logits_per_audio"),
        &out.logits_per_audio,
        &expected["logits_per_audio"],
        LOGIT_TOL,
    );
    check(
        &format!("{name} logits_per_text"),
        &out.logits_per_text,
        &expected["logits_per_text"],
        LOGIT_TOL,
    );
    // get_*_features agree with forward
    let a = model.get_audio_features(&input, &is_longer).unwrap();
    check(
        &format!("{name} get_audio_features"),
        &a,
        &out.audio_embeds,
        0.0,
    );
    (model, expected)
}

#[test]
fn unfused_model_matches_transformers() {
    let (model, expected) = check_model("unfused", "rand_trunc");
    assert!(!model.config.audio_config.enable_fusion);
    let want: Vec<u8> = expected["relative_position_index"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let got: Vec<u8> = relative_position_index(8)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn fused_model_matches_transformers() {
    let (model, expected) = check_model("fused", "fusion");
    assert!(model.config.audio_config.enable_fusion);
    // the extractor end to end on [chirp, short]: none is longer, one is flagged at random
    let features = load(&fixtures().join("features.safetensors"));
    let choices = json("choices.json");
    let fe = extractor(Truncation::Fusion);
    let (chirp, short) = (wave(&features, "chirp"), wave(&features, "short"));
    let mut g = GivenChoices::new([choices["fusion_pair_longer"].as_u64().unwrap() as usize]);
    let batch = fe
        .extract(&[&chirp, &short], 8000, &mut g, &Device::Cpu)
        .unwrap();
    assert_eq!(batch.is_longer, flags(&expected["pair.is_longer"]));
    let embeds = model
        .get_audio_features(&batch.input_features, &batch.is_longer)
        .unwrap();
    check(
        "fused pair embeds",
        &embeds,
        &expected["pair.embeds"],
        EMBED_TOL,
    );
}

#[test]
fn tokenizer_matches_transformers() {
    let dir = fixtures().join("unfused");
    let tok = RobertaTokenizer::from_dir(&dir).unwrap();
    let cases = json("cases.json");
    let texts: Vec<&str> = cases["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for (text, ids) in texts.iter().zip(cases["ids"].as_array().unwrap()) {
        let want: Vec<u32> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text).unwrap(), want, "{text:?}");
    }
    let expected = load(&dir.join("expected.safetensors"));
    let (ids, mask) = tok.encode_batch(&texts[..3], None, &Device::Cpu).unwrap();
    let want_ids: Vec<Vec<i64>> = expected["text.input_ids"].to_vec2().unwrap();
    let want_mask: Vec<Vec<i64>> = expected["text.attention_mask"].to_vec2().unwrap();
    let got_ids: Vec<Vec<u32>> = ids.to_vec2().unwrap();
    let got_mask: Vec<Vec<u32>> = mask.to_vec2().unwrap();
    let widen = |v: Vec<Vec<u32>>| -> Vec<Vec<i64>> {
        v.into_iter()
            .map(|r| r.into_iter().map(i64::from).collect())
            .collect()
    };
    assert_eq!(widen(got_ids), want_ids);
    assert_eq!(widen(got_mask), want_mask);
    // truncation keeps </s> last
    let (ids, _) = tok
        .encode_batch(&texts[2..3], Some(6), &Device::Cpu)
        .unwrap();
    let row: Vec<Vec<u32>> = ids.to_vec2().unwrap();
    assert_eq!(row[0].len(), 6);
    assert_eq!((row[0][0], row[0][5]), (0, 2));
}

#[test]
fn the_towers_are_differentiable() {
    // a fresh CLAP-architecture model (the fused tiny config) trained for one step's gradient
    let config = ClapConfig::from_file(&fixtures().join("fused/config.json")).unwrap();
    let dev = Device::Cpu;
    let (model, params) = brainrecon_nn::init::init_parameters_with(
        |vb| ClapModel::new(vb, &config),
        3,
        DType::F32,
        &dev,
        ClapModel::init_rule(&config),
    )
    .unwrap();
    let features = load(&fixtures().join("features.safetensors"));
    let input = stacked(&features, &["short", "long"], "fusion");
    let ids = Tensor::new(&[[0u32, 40, 41, 2], [0, 50, 2, 1]], &dev).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1], [1, 1, 1, 0]], &dev).unwrap();
    let out = model
        .forward(&ids, Some(&mask), &input, &[false, true])
        .unwrap();
    // the contrastive loss's audio half: −log softmax of the matching pairs
    let logits = &out.logits_per_audio;
    let lse = logits.exp().unwrap().sum(1).unwrap().log().unwrap();
    let diag = Tensor::stack(
        &[
            logits.get(0).unwrap().get(0).unwrap(),
            logits.get(1).unwrap().get(1).unwrap(),
        ],
        0,
    )
    .unwrap();
    let loss = (lse - diag).unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    for name in [
        "audio_model.audio_encoder.layers.0.blocks.1.attention.self.relative_position_bias_table",
        "audio_model.audio_encoder.layers.0.blocks.1.layernorm_before.weight",
        "audio_model.audio_encoder.patch_embed.proj.weight",
        "audio_model.audio_encoder.patch_embed.mel_conv2d.weight",
        "audio_model.audio_encoder.patch_embed.fusion_model.local_att.0.weight",
        "audio_model.audio_encoder.layers.1.downsample.reduction.weight",
        "audio_model.audio_encoder.batch_norm.weight",
        "text_model.embeddings.word_embeddings.weight",
        "text_model.encoder.layer.1.attention.self.query.weight",
        "logit_scale_a",
    ] {
        let var = params
            .get(name)
            .unwrap_or_else(|| panic!("no parameter {name}"));
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            norm.is_finite() && norm > 0.0,
            "{name}: gradient norm² {norm}"
        );
    }
    // the running statistics are constants of the initialisation
    let var: Vec<f32> = params
        .get("audio_model.audio_encoder.batch_norm.running_var")
        .unwrap()
        .as_tensor()
        .to_vec1()
        .unwrap();
    assert!(var.iter().all(|&v| v == 1.0));
}

#[test]
fn bad_inputs_are_refused_with_a_clear_message() {
    let dir = fixtures().join("unfused");
    let model = ClapModel::load_dir(&dir, &Device::Cpu).unwrap();
    // 32 mel bins for a 64-bin tower
    let x = Tensor::zeros((1, 1, 51, 32), DType::F32, &Device::Cpu).unwrap();
    let e = model
        .get_audio_features(&x, &[false])
        .unwrap_err()
        .to_string();
    assert!(e.contains("mel bins"), "{e}");
    // fusion features for the unfused tower
    let x = Tensor::zeros((1, 4, 51, 64), DType::F32, &Device::Cpu).unwrap();
    let e = model
        .get_audio_features(&x, &[false])
        .unwrap_err()
        .to_string();
    assert!(e.contains("rand_trunc"), "{e}");
    // token ids outside the vocabulary
    let ids = Tensor::new(&[[0u32, 5000, 2]], &Device::Cpu).unwrap();
    let e = model.get_text_features(&ids, None).unwrap_err().to_string();
    assert!(e.contains("vocabulary"), "{e}");
    // a folder without weights names the file
    let empty = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("config.json"), empty.path().join("config.json")).unwrap();
    let e = ClapModel::load_dir(empty.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    // an unknown hub id
    let e = ClapModel::load("nobody/no-such-clap", &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nobody/no-such-clap"), "{e}");
}
