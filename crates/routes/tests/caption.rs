//! The caption route end to end on the synthetic subject with the built-in models, through the
//! library calls behind simulate → nsd prepare → features (z with shapes-ldm, BLIP image tokens
//! with shapes-blip) → fit z and blip → caption → reconstruct --method caption → eval. The
//! commands' bad input (exit 2, the file and flag named) is checked on the binary in
//! crates/cli/tests/caption_route.rs.

mod common;

use brainrecon_core::Device;
use brainrecon_routes::caption::decode::{caption_request, CaptionOptions, CaptionRequest};
use brainrecon_zoo::shapes_blip::quality::shape_words;
use common::{
    eval_request, evaluate, features, fit, reconstruct, reconstruct_request, simulated_subject,
    to_json, user_error,
};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The colour and shape a scene's first caption names ("a {size} {colour} {shape} on a {bg}
/// background").
fn colour_and_shape(true_captions: &[Value]) -> (String, String) {
    let words: Vec<&str> = true_captions[0].as_str().unwrap().split(' ').collect();
    (words[2].to_string(), words[3].to_string())
}

/// Shares of the captions in `file` that name the seen shape's colour, its kind (a synonym
/// counts), and both; and the number of captions.
fn scene_accuracy(file: &Value) -> ([f64; 3], usize) {
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

/// `caption --subject SUBJECT --decoders DECODERS --out OUT --source SOURCE` with the command's
/// defaults (shapes-blip, 3 beams, published scoring): the captions file `--json` prints.
fn caption(subject: &Path, decoders: &Path, out: &Path, source: &str) -> Value {
    let request = CaptionRequest {
        subject: subject.to_path_buf(),
        decoders: Some(decoders.to_path_buf()),
        source: source.into(),
        features: None,
        blip: "shapes-blip".into(),
        out: out.to_path_buf(),
        options: CaptionOptions::default(),
        beam_scoring: "published".into(),
        device: Device::Cpu,
        progress: false,
    };
    to_json(&caption_request(&request).unwrap())
}

/// A prepared subject with z and BLIP features and the z and blip decoders.
fn fitted_subject(dir: &Path) -> (PathBuf, PathBuf) {
    let subject = simulated_subject(dir, 300, 3, 64);
    features(&subject, "shapes-ldm", "vae");
    features(&subject, "shapes-blip", "blip-vision");
    let decoders = dir.join("decoders");
    fit(&subject, "z", &decoders.join("z"), "5");
    fit(&subject, "blip", &decoders.join("blip"), "5");
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
    let ceiling = caption(&subject, &decoders, &dir.path().join("ceiling"), "features");
    let decoded = caption(&subject, &decoders, &dir.path().join("captions"), "decoded");
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
    let mut request = reconstruct_request("caption", &subject, &decoders, "shapes-ldm", &recons);
    request.captions = Some(captions);
    request.options.samples = 1;
    request.options.steps = 10;
    request.options.limit = Some(4);
    let summary = reconstruct(&request);
    assert_eq!(summary["written"], 8, "{summary}");
    let manifest = brainrecon_testkit::json(&recons.join("manifest.json"));
    assert_eq!(manifest["options"]["method"], "caption");
    assert!(manifest["captions_fingerprint"].is_string());
    // The evaluation scores the run's captions and shows them in the report.
    let evaluation = evaluate(&eval_request(&subject, &recons));
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
    // A rerun resumes; other captions are refused as bad input (the binary exits with 2).
    let again = reconstruct(&request);
    assert_eq!(again["skipped"], 8);
    request.captions = Some(dir.path().join("ceiling"));
    let refused = brainrecon_routes::reconstruct::run(&request).unwrap_err();
    let message = user_error(refused);
    assert!(message.contains("manifest.json"), "{message}");
}
