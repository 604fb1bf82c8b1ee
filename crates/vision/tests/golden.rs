//! The metric networks and preprocessing against torchvision 0.29.2 / torch 2.15.0 / Pillow
//! (fixtures from `tools/fixtures/metric_networks.py`): the same deterministic weights and
//! inputs on both sides, every node MindEye reads within 1e-4 (relative to its largest value).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use brainrecon_vision::deterministic::deterministic_var_builder;
use brainrecon_vision::preprocess::resize_bilinear;
use brainrecon_vision::{AlexNet, EfficientNetB1, InceptionV3, ResNet50};
use candle_core::{Device, Tensor};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load() -> (HashMap<String, Tensor>, serde_json::Value) {
    let tensors = candle_core::safetensors::load(
        fixtures().join("metric_networks.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let meta = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("metric_networks.json")).unwrap(),
    )
    .unwrap();
    (tensors, meta)
}

/// The fixture script's `image()`: smooth waves with a flat square, scaled to [low, high].
fn image(batch: usize, channels: usize, size: usize, seed: f64, low: f64, high: f64) -> Vec<f32> {
    let s = size / 4;
    let mut out = Vec::with_capacity(batch * channels * size * size);
    for b in 0..batch {
        for c in 0..channels {
            for y in 0..size {
                for x in 0..size {
                    let (bf, cf, yf, xf) = (b as f64, c as f64, y as f64, x as f64);
                    let mut wave = 0.5
                        + 0.35 * (0.05 * xf * (cf + 1.0) + 0.07 * yf * (bf + 1.0) + seed).sin()
                        + 0.1 * (0.31 * (xf + yf) * (bf + 2.0) + seed).cos();
                    wave = wave.clamp(0.0, 1.0);
                    if (s..2 * s).contains(&y) && (s..2 * s).contains(&x) {
                        wave = 0.3;
                    }
                    out.push((low + (high - low) * wave) as f32);
                }
            }
        }
    }
    out
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Max |got − want| over max |want|.
fn relative(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
    let err = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    assert!(err.is_finite(), "non-finite output");
    err / scale.max(f64::MIN_POSITIVE)
}

/// Compares a node [B, C, ...] with the fixture's every-k-th values and per-channel sums.
fn check_node(
    name: &str,
    node: &Tensor,
    fixtures: &HashMap<String, Tensor>,
    meta: &serde_json::Value,
) {
    let shape: Vec<usize> = serde_json::from_value(meta["shape"].clone()).unwrap();
    let step = meta["step"].as_u64().unwrap() as usize;
    let node = node.reshape(shape.as_slice()).unwrap();
    let (b, c) = (shape[0], shape[1]);
    let flat = values(&node);
    let per_image = flat.len() / b;
    let every: Vec<f32> = (0..b)
        .flat_map(|i| {
            flat[i * per_image..(i + 1) * per_image]
                .iter()
                .step_by(step)
                .copied()
                .collect::<Vec<_>>()
        })
        .collect();
    let sums: Vec<f32> = values(&node.reshape((b, c, ())).unwrap().sum(2).unwrap());
    let e1 = relative(&every, &values(&fixtures[&format!("{name}.every")]));
    let e2 = relative(&sums, &values(&fixtures[&format!("{name}.channel_sums")]));
    eprintln!("{name}: values {e1:.2e}, channel sums {e2:.2e}");
    assert!(e1 < 1e-4 && e2 < 1e-4, "{name}: {e1} {e2}");
}

fn input(size: usize) -> Tensor {
    Tensor::from_vec(
        image(2, 3, size, 1.0, -2.0, 2.0),
        (2, 3, size, size),
        &Device::Cpu,
    )
    .unwrap()
}

#[test]
fn alexnet_features_4_and_11_match_torchvision() {
    let (fixtures, meta) = load();
    let net = AlexNet::new(deterministic_var_builder(&Device::Cpu)).unwrap();
    let out = net.forward(&input(256)).unwrap();
    check_node(
        "alexnet.features.4",
        &out.features_4,
        &fixtures,
        &meta["alexnet"]["nodes"]["features.4"],
    );
    check_node(
        "alexnet.features.11",
        &out.features_11,
        &fixtures,
        &meta["alexnet"]["nodes"]["features.11"],
    );
}

#[test]
fn inception_v3_avgpool_matches_torchvision() {
    let (fixtures, meta) = load();
    let net = InceptionV3::new(deterministic_var_builder(&Device::Cpu)).unwrap();
    let out = net.forward(&input(342)).unwrap();
    check_node(
        "inception_v3.avgpool",
        &out,
        &fixtures,
        &meta["inception_v3"]["nodes"]["avgpool"],
    );
}

#[test]
fn efficientnet_b1_avgpool_matches_torchvision() {
    let (fixtures, meta) = load();
    let net = EfficientNetB1::new(deterministic_var_builder(&Device::Cpu)).unwrap();
    let out = net.forward(&input(255)).unwrap();
    check_node(
        "efficientnet_b1.avgpool",
        &out,
        &fixtures,
        &meta["efficientnet_b1"]["nodes"]["avgpool"],
    );
}

#[test]
fn resnet50_avgpool_matches_torchvision() {
    let (fixtures, meta) = load();
    let net = ResNet50::new(deterministic_var_builder(&Device::Cpu)).unwrap();
    let out = net.forward(&input(224)).unwrap();
    check_node(
        "resnet50.avgpool",
        &out,
        &fixtures,
        &meta["resnet50"]["nodes"]["avgpool"],
    );
}

#[test]
fn bilinear_resizes_match_torch_interpolate_without_antialias() {
    let (fixtures, meta) = load();
    for case in meta["resize"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (from, to) = (
            case["from"].as_u64().unwrap() as usize,
            case["to"].as_u64().unwrap() as usize,
        );
        let src = image(1, 3, from, case["seed"].as_f64().unwrap(), 0.0, 1.0);
        let got = resize_bilinear(&src, 3, (from, from), (to, to));
        let every: Vec<f32> = got.iter().step_by(11).copied().collect();
        let e = relative(&every, &values(&fixtures[&format!("resize.torch.{name}")]));
        assert!(e < 1e-6, "{name}: {e}");
    }
}

#[test]
fn pillow_bilinear_resizes_match_pillow() {
    use brainrecon_formats::image::{Filter, RgbImage};
    let (fixtures, _) = load();
    let src = fixtures["resize.pil.src_425"]
        .flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap();
    let image = RgbImage::new(425, 425, src);
    for size in [224, 256] {
        let want = fixtures[&format!("resize.pil.425_to_{size}_bilinear")]
            .flatten_all()
            .unwrap()
            .to_vec1::<u8>()
            .unwrap();
        assert_eq!(
            image.resize_with(size, size, Filter::Bilinear).pixels,
            want,
            "425 → {size}"
        );
    }
}

#[test]
fn identification_distance_and_both_ssims_match_numpy_scipy_and_scikit_image() {
    use brainrecon_metrics::{identification, image, vector};
    let (fixtures, meta) = load();
    let scores = &meta["scores"];
    let (reals, preds) = (
        values(&fixtures["scores.reals"]),
        values(&fixtures["scores.preds"]),
    );
    let (n, d) = (9, 37);
    let two_way = identification::two_way_identification(&preds, &reals, n, d).unwrap();
    assert!(
        (two_way - scores["two_way"].as_f64().unwrap()).abs() < 1e-12,
        "{two_way}"
    );
    let distance: f64 = (0..n)
        .map(|i| {
            vector::correlation_distance(&reals[i * d..(i + 1) * d], &preds[i * d..(i + 1) * d])
                .unwrap()
        })
        .sum::<f64>()
        / n as f64;
    assert!(
        (distance - scores["correlation_distance"].as_f64().unwrap()).abs() < 1e-6,
        "{distance}"
    );
    let gray =
        |k: &str| -> Vec<f64> { fixtures[k].flatten_all().unwrap().to_vec1::<f64>().unwrap() };
    let (a, b) = (gray("scores.gray_a"), gray("scores.gray_b"));
    let legacy = image::ssim_columns_legacy(&a, &b, 40, 40).unwrap();
    assert!(
        (legacy - scores["ssim_columns"].as_f64().unwrap()).abs() < 1e-10,
        "{legacy}"
    );
    let modern = image::ssim_f64(&a, &b, 40, 40).unwrap();
    assert!(
        (modern - scores["ssim_2d"].as_f64().unwrap()).abs() < 1e-10,
        "{modern}"
    );
}
