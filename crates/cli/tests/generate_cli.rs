//! `brainrecon generate` end to end on the tiny random Stable Diffusion fixture
//! (crates/diffusion/tests/fixtures/tiny-sd, written by tools/fixtures/diffusion_pipeline.py).

use brainrecon_testkit::copy_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tiny_sd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../diffusion/tests/fixtures/tiny-sd")
}

fn brainrecon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(args)
        .env("HF_HUB_CACHE", "/nonexistent-brainrecon-test-cache")
        .output()
        .expect("run brainrecon")
}

fn generate(out: &Path, extra: &[&str]) -> Vec<u8> {
    let model = tiny_sd();
    let mut args = vec![
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "a red circle on a blue background",
        "--steps",
        "3",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let result = brainrecon(&args);
    assert!(
        result.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::read(out).unwrap()
}

#[test]
fn same_seed_same_png_bytes_different_seed_different_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let a = generate(&tmp.path().join("a.png"), &["--seed", "5"]);
    let b = generate(&tmp.path().join("b.png"), &["--seed", "5"]);
    let c = generate(&tmp.path().join("c.png"), &["--seed", "6"]);
    assert_eq!(a, b);
    assert_ne!(a, c);
    let img = brainrecon_formats::image::read_png(&tmp.path().join("a.png")).unwrap();
    // tiny-sd: sample_size 16 × VAE factor 2.
    assert_eq!((img.height, img.width), (32, 32));
}

#[test]
fn img2img_and_every_scheduler_run() {
    let tmp = tempfile::tempdir().unwrap();
    let init = tiny_sd().join("../pipeline/init.png");
    let init = init.to_str().unwrap();
    let a = generate(
        &tmp.path().join("i.png"),
        &[
            "--init-image",
            init,
            "--strength",
            "0.7",
            "--negative-prompt",
            "blurry",
            "--guidance",
            "5",
        ],
    );
    let b = generate(
        &tmp.path().join("j.png"),
        &[
            "--init-image",
            init,
            "--strength",
            "0.7",
            "--negative-prompt",
            "blurry",
            "--guidance",
            "5",
        ],
    );
    assert_eq!(a, b);
    for scheduler in ["ddim", "euler", "euler-a"] {
        generate(
            &tmp.path().join(format!("{scheduler}.png")),
            &[
                "--scheduler",
                scheduler,
                "--height",
                "16",
                "--width",
                "24",
                "--dtype",
                "f16",
            ],
        );
        let img = brainrecon_formats::image::read_png(&tmp.path().join(format!("{scheduler}.png")))
            .unwrap();
        assert_eq!((img.height, img.width), (16, 24));
    }
}

#[test]
fn user_errors_exit_2_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.png");
    let model = tiny_sd();
    let model = model.to_str().unwrap();
    let o = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--model", model, "--strength", "0.5"], "--init-image"),
        (vec!["--model", model, "--scheduler", "pndm"], "pndm"),
        (vec!["--model", model, "--height", "18"], "--height"),
        (vec!["--model", model, "--dtype", "f64"], "--dtype"),
        (
            vec!["--model", model, "--dtype", "bf16"],
            "--dtype bf16 needs --device cuda",
        ),
        (
            vec!["--model", "nobody/no-such-model"],
            "huggingface-cli download",
        ),
        (vec!["--model", "/no/such/folder"], "/no/such/folder"),
    ];
    // An init image smaller than the model's unit (VAE factor × U-Net downsampling) names the
    // image, not the --height the user never gave.
    let tiny = tmp.path().join("tiny.png");
    brainrecon_formats::image::write_png(
        &tiny,
        &brainrecon_formats::image::RgbImage {
            height: 2,
            width: 2,
            pixels: vec![128; 12],
        },
    )
    .unwrap();
    let tiny = tiny.to_str().unwrap();
    let mut cases = cases;
    cases.push((
        vec!["--model", model, "--init-image", tiny],
        "tiny.png: size",
    ));
    for (extra, needle) in cases {
        let mut args = vec!["generate", "--prompt", "x", "--steps", "2", "--out", o];
        args.extend(extra);
        let r = brainrecon(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!out.exists());
    }
    // A folder with a pickle checkpoint instead of safetensors.
    let bad = tmp.path().join("sd");
    copy_dir(&tiny_sd(), &bad);
    std::fs::remove_file(bad.join("unet/diffusion_pytorch_model.safetensors")).unwrap();
    std::fs::write(bad.join("unet/diffusion_pytorch_model.bin"), b"pickle").unwrap();
    let r = brainrecon(&[
        "generate",
        "--model",
        bad.to_str().unwrap(),
        "--prompt",
        "x",
        "--out",
        o,
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(
        err.contains("diffusion_pytorch_model.bin") && err.contains("safetensors"),
        "{err}"
    );
}

#[test]
fn help_has_an_example() {
    let r = brainrecon(&["generate", "--help"]);
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success());
    assert!(
        text.contains("Example:") && text.contains("brainrecon generate --model"),
        "{text}"
    );
}

#[test]
fn model_ids_resolve_from_the_hugging_face_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("hub/models--tiny--sd");
    copy_dir(&tiny_sd(), &repo.join("snapshots/0123abcd"));
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd\n").unwrap();
    let out = tmp.path().join("cached.png");
    let run = |model: &str| {
        Command::new(env!("CARGO_BIN_EXE_brainrecon"))
            .args([
                "generate", "--model", model, "--prompt", "a cat", "--steps", "2",
            ])
            .args(["--out", out.to_str().unwrap()])
            .env_remove("HF_HUB_CACHE")
            .env("HF_HOME", tmp.path())
            .output()
            .unwrap()
    };
    let r = run("tiny/sd");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let cached = std::fs::read(&out).unwrap();
    let snapshot = repo.join("snapshots/0123abcd");
    let r = run(snapshot.to_str().unwrap());
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(cached, std::fs::read(&out).unwrap());
    let r = run("tiny/other");
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2));
    assert!(
        err.contains("models--tiny--other") && err.contains("huggingface-cli download tiny/other"),
        "{err}"
    );
}
