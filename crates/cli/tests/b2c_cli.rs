//! Brain-to-Context end to end on the synthetic subject with shapes-ldm, as a user runs it:
//! simulate → nsd prepare → b2c ablation (four trainings, reconstructions, evaluations), then
//! the bad inputs of `b2c train` and `reconstruct --method b2c`.

mod common;

use common::{copy_dir, ok, p, simulated_subject, user_error};
use std::path::{Path, PathBuf};

fn prepared_subject(dir: &Path) -> PathBuf {
    simulated_subject(dir, 200, 5, 64)
}

fn value(cell: &serde_json::Value, column: usize) -> f64 {
    cell["values"][column]
        .as_f64()
        .unwrap_or_else(|| panic!("column {column} of {cell}"))
}

#[test]
fn ablation_shows_the_clip_loss_aligning_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let subject = prepared_subject(dir.path());
    let out = dir.path().join("ablation");
    let common = [
        "--subject",
        p(&subject),
        "--model",
        "shapes-ldm",
        "--steps",
        "150",
        "--batch",
        "4",
        "--lr",
        "3e-4",
        "--layers",
        "2",
        "--seed",
        "1",
        "--checkpoint-every",
        "75",
    ];
    let mut args = vec![
        "b2c",
        "ablation",
        "--out",
        p(&out),
        "--sample-steps",
        "10",
        "--limit",
        "16",
        "--json",
    ];
    args.extend(common);
    let result: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    let cells = result["cells"].as_array().unwrap();
    let names: Vec<&str> = cells.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["none", "patch", "clip", "patch+clip"]);
    // Table 1's columns: pixel MSE, PCC, SSIM, latent MSE, latent PCC, context cosine, pairwise ID.
    for cell in cells {
        for column in 0..7 {
            assert!(value(cell, column).is_finite(), "{cell}");
        }
    }
    let (cos, id) = (5, 6);
    for with in &cells[2..] {
        for without in &cells[..2] {
            assert!(
                value(with, cos) > value(without, cos) + 0.2,
                "context cosine: {with} vs {without}"
            );
            assert!(
                value(with, id) > value(without, id),
                "pairwise identification: {with} vs {without}"
            );
        }
        assert!(
            value(with, id) > 0.8,
            "pairwise identification well above chance: {with}"
        );
    }
    for file in [
        "ablation.md",
        "ablation.html",
        "figure.png",
        "ablation.json",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let md = std::fs::read_to_string(out.join("ablation.md")).unwrap();
    assert!(md.contains("0.7412") && md.contains("pairwise ID"), "{md}");
    let model = out.join("patch+clip/model");
    for file in [
        "training.json",
        "losses.json",
        "loss.png",
        "loss.svg",
        "encoder/config.json",
        "encoder/model.safetensors",
        "unet/tuned.safetensors",
    ] {
        assert!(model.join(file).is_file(), "{file}");
    }
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("training.json")).unwrap())
            .unwrap();
    let groups: Vec<&str> = record["layout"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(&groups[..3], ["V1", "V2-V4", "higher visual"], "{record}");

    // Rerunning finds everything done and gives the same table.
    let again: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(again["cells"][3]["values"], result["cells"][3]["values"]);
}

/// `b2c train` on the project's tape (the default) and through candle's autograd: the same
/// losses over the first steps (each step's parameters come from the previous steps' AdamW
/// updates, so the gradients agree too), with context dropout and the CLIP term on.
#[test]
fn tape_and_candle_engines_give_the_same_losses() {
    let dir = tempfile::tempdir().unwrap();
    let subject = simulated_subject(dir.path(), 60, 3, 64);
    let losses = |engine: &str| -> Vec<[f64; 3]> {
        let out = dir.path().join(engine);
        ok(&[
            "b2c",
            "train",
            "--subject",
            p(&subject),
            "--out",
            p(&out),
            "--steps",
            "4",
            "--batch",
            "4",
            "--layers",
            "1",
            "--lr",
            "1e-3",
            "--engine",
            engine,
        ]);
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("training.json")).unwrap())
                .unwrap();
        assert_eq!(record["options"]["engine"], engine, "{record}");
        let losses: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(out.join("losses.json")).unwrap())
                .unwrap();
        losses
            .iter()
            .map(|l| ["total", "diffusion", "clip"].map(|k| l[k].as_f64().unwrap()))
            .collect()
    };
    let (tape, candle) = (losses("tape"), losses("candle"));
    assert_eq!(tape.len(), 4);
    for (step, (ours, theirs)) in tape.iter().zip(&candle).enumerate() {
        for (k, (a, b)) in ours.iter().zip(theirs).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "step {} loss {k}: tape {a}, candle {b}",
                step + 1
            );
        }
    }
    // the parameters moved: the losses are not all the first step's
    assert!(tape.windows(2).any(|w| w[0] != w[1]), "{tape:?}");
    let message = user_error(&[
        "b2c",
        "train",
        "--subject",
        p(&subject),
        "--out",
        p(&dir.path().join("bad")),
        "--engine",
        "torch",
    ]);
    assert!(message.contains("engine"), "{message}");
}

#[test]
fn bad_input_exits_with_2_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let subject = prepared_subject(dir);
    let subject = subject.as_path();
    let trained = dir.join("trained");
    ok(&[
        "b2c",
        "train",
        "--subject",
        p(subject),
        "--out",
        p(&trained),
        "--steps",
        "2",
        "--batch",
        "2",
        "--layers",
        "1",
    ]);
    let trained = trained.as_path();
    let out = dir.join("bad");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "b2c",
            "train",
            "--subject",
            p(subject),
            "--out",
            p(&out),
            "--steps",
            "2",
        ];
        args.extend(extra);
        user_error(&args)
    };
    assert!(train(&["--steps", "0"]).contains("--steps"));
    assert!(train(&["--clip-loss=-1"]).contains("--clip-loss"));
    assert!(train(&["--clip-loss", "NaN"]).contains("--clip-loss"));
    assert!(train(&["--objective", "noise"]).contains("--objective"));
    assert!(!out.exists(), "nothing written for bad flags");

    // A subject without the prf-visualrois atlas.
    let stripped = dir.join("stripped");
    copy_dir(subject, &stripped);
    let meta_path = stripped.join("subject.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    meta["atlases"]
        .as_array_mut()
        .unwrap()
        .retain(|a| a["name"] != "prf-visualrois");
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    let message = user_error(&[
        "b2c",
        "train",
        "--subject",
        p(&stripped),
        "--out",
        p(&out),
        "--steps",
        "2",
    ]);
    assert!(message.contains("prf-visualrois"), "{message}");
    assert!(!out.exists(), "nothing written without the atlas");

    // NaN betas: the message names the file.
    let nan = dir.join("nan");
    copy_dir(subject, &nan);
    let betas = nan.join("betas/nsdgeneral/train.npy");
    let mut array = brainrecon_formats::npy::read_f32(&betas).unwrap();
    array.data[5] = f32::NAN;
    brainrecon_formats::npy::write(&betas, &array.shape, &array.data).unwrap();
    let message = user_error(&[
        "b2c",
        "train",
        "--subject",
        p(&nan),
        "--out",
        p(&out),
        "--steps",
        "2",
    ]);
    assert!(
        message.contains("train.npy") && message.contains("finite"),
        "{message}"
    );
    assert!(!out.exists());

    // A B2C folder of another model, and of another subject.
    let recon = dir.join("recon-bad");
    let message = user_error(&[
        "reconstruct",
        "--method",
        "b2c",
        "--b2c",
        p(trained),
        "--subject",
        p(subject),
        "--model",
        p(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../diffusion/tests/fixtures/tiny-sd")),
        "--out",
        p(&recon),
    ]);
    assert!(message.contains("training.json"), "{message}");
    let other = dir.join("other");
    ok(&[
        "simulate",
        "--out",
        p(&dir.join("nsd2")),
        "--images",
        "60",
        "--seed",
        "9",
        "--image-size",
        "64",
        "--subject",
        "subj02",
    ]);
    ok(&[
        "nsd",
        "prepare",
        "--nsd-root",
        p(&dir.join("nsd2")),
        "--subject",
        "subj02",
        "--out",
        p(&other),
    ]);
    let message = user_error(&[
        "reconstruct",
        "--method",
        "b2c",
        "--b2c",
        p(trained),
        "--subject",
        p(&other),
        "--model",
        "shapes-ldm",
        "--out",
        p(&recon),
    ]);
    assert!(
        message.contains("training.json") && message.contains("subj02"),
        "{message}"
    );
    assert!(!recon.exists(), "nothing written for a mismatched folder");
}

#[test]
fn a_resumed_training_gives_the_bytes_of_an_unbroken_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let subject = prepared_subject(dir);
    let (unbroken, resumed) = (dir.join("unbroken"), dir.join("resumed"));
    let train = |out: &Path| {
        ok(&[
            "b2c",
            "train",
            "--subject",
            p(&subject),
            "--out",
            p(out),
            "--steps",
            "4",
            "--batch",
            "3",
            "--layers",
            "1",
            "--checkpoint-every",
            "2",
            "--tune",
            "attn-kv",
        ])
    };
    train(&unbroken);
    // An interruption after step 2: the newest checkpoint and every output gone.
    copy_dir(&unbroken, &resumed);
    for gone in [
        ".train/step-4",
        "encoder",
        "unet",
        "training.json",
        "losses.json",
    ] {
        let path = resumed.join(gone);
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
    }
    assert!(resumed.join(".train").read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains('2')));
    train(&resumed);
    for file in [
        "encoder/model.safetensors",
        "unet/tuned.safetensors",
        "losses.json",
    ] {
        assert_eq!(
            std::fs::read(unbroken.join(file)).unwrap(),
            std::fs::read(resumed.join(file)).unwrap(),
            "{file}"
        );
    }
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(resumed.join("training.json")).unwrap())
            .unwrap();
    assert_eq!(record["options"]["tune"], "attn-kv");
    // Only the cross-attention keys and values were tuned.
    let tuned = tensor_names(&resumed.join("unet/tuned.safetensors"));
    assert!(
        !tuned.is_empty()
            && tuned
                .iter()
                .all(|n| n.contains("attn2.to_k.") || n.contains("attn2.to_v.")),
        "{tuned:?}"
    );
}

/// Tensor names of a safetensors file, from its JSON header.
fn tensor_names(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect()
}

#[test]
fn init_z_starts_from_the_linear_routes_decoded_z() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let subject = prepared_subject(dir);
    let (trained, decoders, recon) = (dir.join("trained"), dir.join("decoders"), dir.join("recon"));
    ok(&[
        "b2c",
        "train",
        "--subject",
        p(&subject),
        "--out",
        p(&trained),
        "--steps",
        "2",
        "--batch",
        "2",
        "--layers",
        "1",
    ]);
    ok(&[
        "features",
        "--subject",
        p(&subject),
        "--model",
        "shapes-ldm",
        "--kind",
        "vae",
    ]);
    ok(&[
        "fit",
        "--subject",
        p(&subject),
        "--target",
        "z",
        "--out",
        p(&decoders.join("z")),
    ]);
    let args = [
        "reconstruct",
        "--method",
        "b2c",
        "--b2c",
        p(&trained),
        "--subject",
        p(&subject),
        "--model",
        "shapes-ldm",
        "--out",
        p(&recon),
        "--init",
        "z",
        "--decoders",
        p(&decoders),
        "--samples",
        "1",
        "--steps",
        "4",
        "--limit",
        "3",
        "--json",
    ];
    let summary: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(
        summary["written"], 6,
        "3 decoded-z images and 3 reconstructions: {summary}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(recon.join("manifest.json")).unwrap())
            .unwrap();
    let ids: Vec<u64> = manifest["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    for id in &ids {
        assert!(recon.join(format!("decoded-z/{id}.png")).is_file());
        assert!(recon.join(format!("sample-1/{id}.latent.npy")).is_file());
    }
    // A rerun writes nothing new and the same bytes stay.
    let before = std::fs::read(recon.join(format!("sample-1/{}.png", ids[0]))).unwrap();
    let again: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(
        (again["written"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(6))
    );
    assert_eq!(
        before,
        std::fs::read(recon.join(format!("sample-1/{}.png", ids[0]))).unwrap()
    );
    let eval: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--stimuli",
        p(&subject),
        "--recons",
        p(&recon),
        "--json",
    ]))
    .unwrap();
    let rows = eval["rows"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["name"] == "decoded z"), "{eval}");
    assert!(
        rows.iter().any(|r| r["context_cosine"].is_number()),
        "{eval}"
    );
    // Without a z decoder --init z is a usage error.
    let message = user_error(&[
        "reconstruct",
        "--method",
        "b2c",
        "--b2c",
        p(&trained),
        "--subject",
        p(&subject),
        "--model",
        "shapes-ldm",
        "--out",
        p(&dir.join("recon2")),
        "--init",
        "z",
    ]);
    assert!(message.contains("--init z"), "{message}");
}
