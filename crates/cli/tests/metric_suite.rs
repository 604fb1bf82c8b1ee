//! `brainrecon eval` on plain folders of PNGs with the metric suite: both protocols with stand-in
//! network weights (written with torchvision's names), a run without weights (networks shown
//! absent with the command that supplies them), and bad weights folders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use brainrecon_formats::image::{write_png, RgbImage};
use brainrecon_vision::deterministic::write_deterministic_weights as write;
use brainrecon_vision::{AlexNet, EfficientNetB1, InceptionV3, ResNet50};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(args)
        .output()
        .unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn tiny_clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../diffusion/tests/fixtures/clip_vision/model")
}

/// Stimuli (48 px) and reconstructions (64 px, a noisy copy) named by id; image 2 is nearly
/// flat (a gradient of 1% of the range: a constant one has no correlation at all, NaN as numpy).
fn images(dir: &Path) -> (PathBuf, PathBuf) {
    let (stimuli, recons) = (dir.join("stimuli"), dir.join("recons"));
    std::fs::create_dir_all(&stimuli).unwrap();
    std::fs::create_dir_all(&recons).unwrap();
    for id in 0..4usize {
        let picture = |size: usize, noise: f32| {
            let mut px = Vec::with_capacity(size * size * 3);
            for y in 0..size {
                for x in 0..size {
                    for c in 0..3 {
                        let v = if id == 2 {
                            0.4 + 0.01 * x as f32 / size as f32
                        } else {
                            let (u, w) = (x as f32 / size as f32, y as f32 / size as f32);
                            0.5 + 0.4 * ((u * (id + 1) as f32 * 5.0 + w * 3.0 + c as f32).sin())
                                + noise * ((x * 7 + y * 13 + c) as f32).sin()
                        };
                        px.push((v.clamp(0.0, 1.0) * 255.0).round() as u8);
                    }
                }
            }
            RgbImage::new(size, size, px)
        };
        write_png(&stimuli.join(format!("{id}.png")), &picture(48, 0.0)).unwrap();
        write_png(&recons.join(format!("{id}.png")), &picture(64, 0.1)).unwrap();
    }
    (stimuli, recons)
}

fn weights(dir: &Path) -> PathBuf {
    let out = dir.join("weights");
    std::fs::create_dir_all(&out).unwrap();
    write(&out.join("alexnet.safetensors"), AlexNet::new).unwrap();
    write(&out.join("inception_v3.safetensors"), InceptionV3::new).unwrap();
    write(
        &out.join("efficientnet_b1.safetensors"),
        EfficientNetB1::new,
    )
    .unwrap();
    // brain-diffuser's V1 weights: another file of the same network
    write(
        &out.join("efficientnet_b1_v1.safetensors"),
        EfficientNetB1::new,
    )
    .unwrap();
    write(&out.join("swav_resnet50.safetensors"), ResNet50::new).unwrap();
    out
}

fn suite_values(output: &Output) -> Vec<Option<f64>> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    json["suite"]["rows"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64())
        .collect()
}

#[test]
fn both_protocols_fill_all_eight_columns_and_differ_where_they_should() {
    let dir = tempfile::tempdir().unwrap();
    let (stimuli, recons) = images(dir.path());
    let weights = weights(dir.path());
    let eval = |protocol: &str| {
        suite_values(&run(&[
            "eval",
            "--stimuli",
            p(&stimuli),
            "--recons",
            p(&recons),
            "--metric-weights",
            p(&weights),
            "--clip",
            p(&tiny_clip()),
            "--protocol",
            protocol,
            "--json",
        ]))
    };
    let (mindeye, diffuser) = (eval("mindeye"), eval("brain-diffuser"));
    for values in [&mindeye, &diffuser] {
        assert_eq!(values.len(), 8);
        assert!(values.iter().all(Option::is_some), "{values:?}");
        let v: Vec<f64> = values.iter().map(|v| v.unwrap()).collect();
        assert!(v[2..6].iter().all(|x| (0.0..=1.0).contains(x)), "{v:?}");
        assert!(v[6..].iter().all(|x| (0.0..=2.0).contains(x)), "{v:?}");
    }
    // the reconstructions are noisy copies: high pixel correlation under both protocols
    assert!(
        mindeye[0].unwrap() > 0.8 && diffuser[0].unwrap() > 0.8,
        "{mindeye:?} {diffuser:?}"
    );
    // different resampling and a different SSIM: the numbers are not the same
    assert_ne!(mindeye[1], diffuser[1]);
}

#[test]
fn without_weights_the_networks_are_absent_with_the_command_that_supplies_them() {
    let dir = tempfile::tempdir().unwrap();
    let (stimuli, recons) = images(dir.path());
    let out = run(&["eval", "--stimuli", p(&stimuli), "--recons", p(&recons)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("PixCorr") && text.contains("SwAV"), "{text}");
    assert!(text.contains("tools/convert_torchvision.py"), "{text}");
    let values = suite_values(&run(&[
        "eval",
        "--stimuli",
        p(&stimuli),
        "--recons",
        p(&recons),
        "--json",
    ]));
    assert!(values[0].is_some() && values[1].is_some());
    assert!(values[2..].iter().all(Option::is_none), "{values:?}");
}

#[test]
fn bad_protocols_folders_and_weight_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (stimuli, recons) = images(dir.path());
    let base = ["eval", "--stimuli", p(&stimuli), "--recons", p(&recons)];
    let fails = |extra: &[&str], needle: &str| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    fails(&["--protocol", "takagi"], "--protocol");
    fails(&["--metric-weights", "/no/such/folder"], "/no/such/folder");
    // a weights file of another network: the file and the tensor are named
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    write(&bad.join("alexnet.safetensors"), ResNet50::new).unwrap();
    let file = bad.join("alexnet.safetensors");
    fails(&["--metric-weights", p(&bad)], p(&file));
}
