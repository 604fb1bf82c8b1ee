//! The caption route's commands refusing bad input on the binary: exit 2, the file and flag
//! named. The route itself (caption → reconstruct --method caption → eval on the synthetic
//! subject with the built-in models, its resume rule) is checked through the library in
//! crates/routes/tests/caption.rs.

mod common;

use common::{ok, p, simulated_subject, user_error};
use std::path::Path;

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
