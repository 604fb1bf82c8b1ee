//! The caption route end to end on the synthetic subject with the built-in models, as a user
//! runs it: simulate → nsd prepare → features (z with shapes-ldm, BLIP image tokens with
//! shapes-blip) → fit z and blip → caption → reconstruct --method caption → eval; then the bad
//! inputs of each step.

mod common;

use brainrecon_zoo::shapes_blip::quality::shape_words;
use common::{ok, p, simulated_subject, user_error};
use std::path::{Path, PathBuf};

/// The colour and shape a scene's first caption names ("a {size} {colour} {shape} on a {bg}
/// background").
fn colour_and_shape(true_captions: &[serde_json::Value]) -> (String, String) {
    let words: Vec<&str> = true_captions[0].as_str().unwrap().split(' ').collect();
    (words[2].to_string(), words[3].to_string())
}

/// Shares of the captions in `file` that name the seen shape's colour, its kind (a synonym
/// counts), and both; and the number of captions.
fn scene_accuracy(file: &serde_json::Value) -> ([f64; 3], usize) {
    let items = file["items"].as_array().unwrap();
    let mut hits = [0usize; 3];
    for item in items {
        let (colour, shape) = colour_and_shape(item["true_captions"].as_array().unwrap());
        let words: Vec<&str> = item["caption"].as_str().unwrap().split(' ').collect();
        let named = [
            words.contains(&colour.as_str()),
            shape_words(&shape).iter().any(|w| words.contains(w)),
        ];
        hits[0] += named[0] as usize;
        hits[1] += named[1] as usize;
        hits[2] += (named[0] && named[1]) as usize;
    }
    (hits.map(|h| h as f64 / items.len() as f64), items.len())
}

fn features(subject: &Path, model: &str, kind: &str) {
    ok(&[
        "features",
        "--subject",
        p(subject),
        "--model",
        model,
        "--kind",
        kind,
    ]);
}

fn fit(subject: &Path, target: &str, out: &Path) {
    ok(&[
        "fit",
        "--subject",
        p(subject),
        "--target",
        target,
        "--out",
        p(out),
    ]);
}

fn caption(subject: &Path, decoders: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "caption",
        "--subject",
        p(subject),
        "--decoders",
        p(decoders),
        "--out",
        p(out),
        "--json",
    ];
    args.extend(extra);
    serde_json::from_str(&ok(&args)).unwrap()
}

/// A prepared subject with z and BLIP features and the z and blip decoders.
fn fitted_subject(dir: &Path) -> (PathBuf, PathBuf) {
    let subject = simulated_subject(dir, 300, 3, 64);
    features(&subject, "shapes-ldm", "vae");
    features(&subject, "shapes-blip", "blip-vision");
    let decoders = dir.join("decoders");
    fit(&subject, "z", &decoders.join("z"));
    fit(&subject, "blip", &decoders.join("blip"));
    (subject, decoders)
}

#[test]
fn decoded_captions_name_the_scene_and_condition_the_reconstructions() {
    let dir = tempfile::tempdir().unwrap();
    let (subject, decoders) = fitted_subject(dir.path());
    let model = std::fs::read_to_string(decoders.join("blip/model.json")).unwrap();
    assert!(
        model.contains("streams/early+ventral+lateral+parietal"),
        "{model}"
    );

    // The captioner on the stimuli's own tokens, then on the decoded ones.
    let ceiling = caption(
        &subject,
        &decoders,
        &dir.path().join("ceiling"),
        &["--source", "features"],
    );
    let decoded = caption(&subject, &decoders, &dir.path().join("captions"), &[]);
    let ([_, _, ceiling_both], n) = scene_accuracy(&ceiling);
    let ([colour, shape, both], _) = scene_accuracy(&decoded);
    assert_eq!(n, 30, "every test image is captioned");
    assert!(
        ceiling_both >= 0.85,
        "ceiling: colour and shape named in {ceiling_both}"
    );
    // Chance is 1/6 for the colour and 1/4 for the shape, 1/24 for both. shapes-blip names
    // both in two thirds of the decoded captions (README, "The caption route").
    eprintln!("decoded: colour {colour}, shape {shape}, both {both}");
    assert!(colour >= 0.8, "decoded: colour named in {colour}");
    assert!(shape >= 0.55, "decoded: shape named in {shape}");
    assert!(
        both > 0.5,
        "decoded: colour and shape named in {both}: not most"
    );
    for item in decoded["items"].as_array().unwrap() {
        let beams = item["beams"].as_array().unwrap();
        assert_eq!(beams.len(), 3, "every finished beam is kept");
        let scores: Vec<f64> = beams.iter().map(|b| b["score"].as_f64().unwrap()).collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "best first: {scores:?}"
        );
        assert!(
            !item["caption"]
                .as_str()
                .unwrap()
                .starts_with("a picture of"),
            "prompt stripped"
        );
    }
    assert_eq!(decoded["settings"]["scoring"], "published");

    // Reconstructions from the decoded z, conditioned on the captions.
    let recons = dir.path().join("recons");
    let captions = dir.path().join("captions");
    let args = [
        "reconstruct",
        "--method",
        "caption",
        "--captions",
        p(&captions),
        "--subject",
        p(&subject),
        "--decoders",
        p(&decoders),
        "--out",
        p(&recons),
        "--samples",
        "1",
        "--steps",
        "10",
        "--limit",
        "4",
        "--json",
    ];
    let summary: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(summary["written"], 8, "{summary}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(recons.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["options"]["method"], "caption");
    assert!(manifest["captions_fingerprint"].is_string());
    // The evaluation scores the run's captions and shows them in the report.
    let evaluation: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--stimuli",
        p(&subject),
        "--recons",
        p(&recons),
        "--json",
    ]))
    .unwrap();
    let scores = &evaluation["captions"];
    for key in ["bleu_1", "bleu_4", "rouge_l", "cider"] {
        assert!(
            scores[key].as_f64().is_some_and(f64::is_finite),
            "{key}: {scores}"
        );
    }
    assert!(scores["bleu_1"].as_f64().unwrap() > 50.0, "{scores}");
    assert!(scores["meteor"].is_null(), "no METEOR without its jar");
    let report = std::fs::read_to_string(recons.join("eval/report.html")).unwrap();
    assert!(report.contains("Decoded captions") && report.contains("decoded: "));
    // A rerun resumes; other captions are refused.
    let again: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(again["skipped"], 8);
    let other = dir.path().join("ceiling");
    let mut changed = args;
    changed[4] = p(&other);
    let message = user_error(&changed);
    assert!(message.contains("manifest.json"), "{message}");
}

#[test]
fn bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let subject = simulated_subject(dir.path(), 120, 4, 64);
    features(&subject, "shapes-ldm", "vae");
    let decoders = dir.path().join("decoders");
    fit(&subject, "z", &decoders.join("z"));
    // A z decoder where the BLIP decoder belongs.
    std::fs::create_dir_all(&decoders).unwrap();
    let wrong = dir.path().join("wrong");
    fit(&subject, "z", &wrong.join("blip"));
    let message = user_error(&[
        "caption",
        "--subject",
        p(&subject),
        "--decoders",
        p(&wrong),
        "--out",
        p(&dir.path().join("c")),
    ]);
    assert!(
        message.contains("model.json") && message.contains("blip"),
        "{message}"
    );
    // A layer the captioner does not have.
    let message = user_error(&[
        "features",
        "--subject",
        p(&subject),
        "--kind",
        "blip-vision",
        "--layer",
        "99",
    ]);
    assert!(message.contains("--layer"), "{message}");
    // A model folder of another architecture.
    let clip = dir.path().join("clip");
    std::fs::create_dir_all(&clip).unwrap();
    std::fs::write(
        clip.join("config.json"),
        r#"{"model_type": "clip", "architectures": ["CLIPModel"]}"#,
    )
    .unwrap();
    let message = user_error(&[
        "features",
        "--subject",
        p(&subject),
        "--kind",
        "blip-vision",
        "--model",
        p(&clip),
    ]);
    assert!(message.contains("config.json"), "{message}");
    // Captions of another subject.
    let captions = dir.path().join("captions");
    std::fs::create_dir_all(&captions).unwrap();
    std::fs::write(
        captions.join("captions.json"),
        r#"{"format": "brainrecon-captions", "subject": "subj07", "subject_dir": "x",
            "source": "features", "captioner": "shapes-blip", "captioner_fingerprint": "",
            "settings": {}, "items": []}"#,
    )
    .unwrap();
    let message = user_error(&[
        "reconstruct",
        "--method",
        "caption",
        "--captions",
        p(&captions),
        "--subject",
        p(&subject),
        "--decoders",
        p(&decoders),
        "--out",
        p(&dir.path().join("r")),
    ]);
    assert!(
        message.contains("captions.json") && message.contains("subj07"),
        "{message}"
    );
    // --method caption without captions, and captions without the method.
    let message = user_error(&[
        "reconstruct",
        "--method",
        "caption",
        "--subject",
        p(&subject),
        "--decoders",
        p(&decoders),
        "--out",
        p(&dir.path().join("r")),
    ]);
    assert!(message.contains("--captions"), "{message}");
}
