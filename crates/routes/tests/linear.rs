//! The linear route end to end on a tiny model, through the library calls behind simulate →
//! nsd prepare → features → fit → reconstruct → eval (metrics, JSON, HTML report); and its
//! ablations. The commands' bad input (exit 2, the file and flag named) is checked on the binary
//! in crates/cli/tests/linear_route.rs.

mod browser;
mod common;

use common::{
    eval_request, evaluate, features, fit, reconstruct, reconstruct_request, simulated_subject,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../diffusion/tests/fixtures/tiny-sd")
}

fn tiny_clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../diffusion/tests/fixtures/clip_vision/model")
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The prepared subject with the tiny model's z and c features and decoders, made once and
/// shared by this file's tests (in the tests' target folder, replaced on every run): the
/// summaries of the first `features` and `fit` calls come with it.
struct Fitted {
    dir: PathBuf,
    subject: PathBuf,
    decoders: PathBuf,
    vae: Value,
    text: Value,
    z: Value,
    c: Value,
}

fn fitted() -> &'static Fitted {
    static FITTED: OnceLock<Fitted> = OnceLock::new();
    FITTED.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("linear-route");
        let _ = std::fs::remove_dir_all(&dir);
        let subject = simulated_subject(&dir, 150, 3, 32);
        let model = tiny_model();
        let vae = features(&subject, s(&model), "vae");
        let text = features(&subject, s(&model), "clip-text");
        let decoders = dir.join("decoders");
        let z = fit(&subject, "z", &decoders.join("z"), "5");
        let c = fit(&subject, "c", &decoders.join("c"), "5");
        Fitted {
            dir,
            subject,
            decoders,
            vae,
            text,
            z,
            c,
        }
    })
}

/// A folder of stand-in metric-network weights (the deterministic values of the golden tests,
/// written as safetensors with torchvision's names): the loading path end to end.
fn metric_weights(dir: &Path) -> PathBuf {
    use brainrecon_vision::deterministic::write_deterministic_weights as write;
    use brainrecon_vision::{AlexNet, EfficientNetB1, InceptionV3, ResNet50};
    let out = dir.join("metric-weights");
    std::fs::create_dir_all(&out).unwrap();
    write(&out.join("alexnet.safetensors"), AlexNet::new).unwrap();
    write(&out.join("inception_v3.safetensors"), InceptionV3::new).unwrap();
    write(
        &out.join("efficientnet_b1.safetensors"),
        EfficientNetB1::new,
    )
    .unwrap();
    write(&out.join("swav_resnet50.safetensors"), ResNet50::new).unwrap();
    out
}

/// The eight columns are there for every image set, in range, with per-image files and the
/// published rows in the report.
fn check_suite(eval: &Value, n_test: usize, recons: &Path) {
    let suite = &eval["suite"];
    assert_eq!(suite["protocol"], "mindeye", "{suite}");
    assert!(suite["absent"].as_array().unwrap().is_empty(), "{suite}");
    let rows = suite["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "decoded z",
            "sample 1",
            "sample 2",
            "reconstruction (mean of 2 samples)"
        ],
        "{suite}"
    );
    for row in rows {
        let v: Vec<f64> = row["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(v.len(), 8, "{row}");
        assert!(
            (-1.0..=1.0).contains(&v[0]) && (-1.0..=1.0).contains(&v[1]),
            "{row}"
        );
        assert!(
            v[2..6].iter().all(|x| (0.0..=1.0).contains(x)),
            "two-way in [0, 1]: {row}"
        );
        assert!(
            v[6..].iter().all(|x| (0.0..=2.0).contains(x)),
            "distances in [0, 2]: {row}"
        );
    }
    for file in suite["per_image"].as_array().unwrap() {
        let array = brainrecon_formats::npy::read_f32(Path::new(file.as_str().unwrap())).unwrap();
        assert_eq!(array.shape, vec![n_test, 8], "{file}");
        assert!(array.data.iter().all(|v| v.is_finite()), "{file}");
    }
    let html = std::fs::read_to_string(recons.join("eval/report.html")).unwrap();
    assert!(
        html.contains("MindEye2&#39;s Table 1"),
        "suite table missing"
    );
    assert!(
        html.contains("Takagi &amp; Nishimoto 2023"),
        "published rows missing"
    );
}

fn hashes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            (
                f.file_name().unwrap().to_string_lossy().into(),
                std::fs::read(f).unwrap(),
            )
        })
        .collect()
}

#[test]
fn linear_route_from_simulated_subject_to_report() {
    let fitted = fitted();
    let (subject, decoders) = (&fitted.subject, &fitted.decoders);
    let model = tiny_model();
    let recons = fitted.dir.join("recons");

    // tiny-sd: 32 px native, VAE factor 2 → 20 px images (5/8) → 4×10×10 latents.
    let vae = &fitted.vae;
    assert_eq!(vae["shape"], serde_json::json!([4, 10, 10]));
    let n_images = vae["n_images"].as_u64().unwrap();
    assert_eq!(vae["computed"].as_u64().unwrap(), n_images);
    assert_eq!(fitted.text["shape"], serde_json::json!([77, 32]));
    let clip = tiny_clip();
    let image = features(subject, s(&clip), "clip-image");
    assert_eq!(image["shape"], serde_json::json!([16]));
    // A rerun finds every stimulus cached.
    let again = features(subject, s(&model), "vae");
    assert_eq!(again["computed"], 0);
    assert_eq!(again["cached"].as_u64().unwrap(), n_images);

    assert_eq!(fitted.z["roi"], "streams/early");
    assert_eq!(fitted.z["n_targets"], 400);
    assert_eq!(fitted.c["roi"], "streams/ventral");
    assert_eq!(fitted.c["target_shape"], serde_json::json!([77, 32]));

    let mut request = reconstruct_request("linear", subject, decoders, s(&model), &recons);
    request.options.samples = 2;
    request.options.steps = 10;
    let run = reconstruct(&request);
    let n_test = run["n_images"].as_u64().unwrap() as usize;
    assert!(n_test >= 10, "{run}");
    assert_eq!(run["written"].as_u64().unwrap() as usize, 3 * n_test);
    let sample_dir = recons.join("sample-1");
    let first = hashes(&sample_dir);
    assert_eq!(first.len(), n_test);

    // Resuming: a finished run writes nothing; a lost image is made again, bit for bit (alone,
    // where the first run denoised both samples of an image in one batch).
    let run = reconstruct(&request);
    assert_eq!(run["written"], 0);
    std::fs::remove_file(sample_dir.join(&first[0].0)).unwrap();
    std::fs::remove_file(recons.join("decoded-z").join(&first[1].0)).unwrap();
    reconstruct(&request);
    assert_eq!(hashes(&sample_dir), first);

    // Decoders record which model files made their targets (a run is never resumed on other
    // files under the same name: crates/cli/tests/linear_route.rs).
    let fit = brainrecon_testkit::json(&decoders.join("z/model.json"));
    let fit_on = fit["metadata"]["target_model_fingerprint"]
        .as_str()
        .unwrap();
    assert_eq!(fit_on.len(), 16, "{fit}");

    let weights = metric_weights(&fitted.dir);
    let mut request = eval_request(subject, &recons);
    request.rows_per_page = 8;
    request.clip = Some(s(&clip).into());
    request.metric_weights = Some(weights);
    let eval = evaluate(&request);
    assert_eq!(eval["clip_model"], s(&clip));
    let rows = eval["rows"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no row {name} in {eval}"))
    };
    // The brain encodes the images: decoded latents identify their own stimulus far above
    // chance (0.5), in latent space.
    let latent = row("decoded z (features)")["two_way_latent"]
        .as_f64()
        .unwrap();
    eprintln!("two-way identification of decoded z in latent space: {latent:.3}");
    assert!(latent > 0.8, "{eval}");
    for name in ["decoded z", "reconstruction (mean of 2 samples)"] {
        let r = row(name);
        assert!(r["pixcorr"].as_f64().unwrap().is_finite(), "{r}");
        assert!(r["ssim"].as_f64().unwrap().is_finite(), "{r}");
    }
    check_suite(&eval, n_test, &recons);
    let metrics = brainrecon_testkit::json(&recons.join("eval/metrics.json"));
    assert_eq!(metrics["rows"], eval["rows"]);

    // The report: every page opens in Chromium and all grid images load.
    let pages: Vec<PathBuf> = eval["report"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| PathBuf::from(v.as_str().unwrap()))
        .collect();
    assert_eq!(pages.len(), n_test.div_ceil(8));
    let html = std::fs::read_to_string(&pages[0]).unwrap();
    assert!(
        html.contains("reconstruct --method linear"),
        "command missing"
    );
    for page in &pages {
        let check = browser::check_images_load(page).unwrap();
        assert!(check.images > 0, "{page:?}");
        assert_eq!(
            check.loaded, check.images,
            "{page:?}: broken {:?}",
            check.broken
        );
    }
}

#[test]
fn ablations_write_their_own_images() {
    let fitted = fitted();
    let model = tiny_model();
    let ablation = |method: &str| {
        let out = fitted.dir.join(method);
        let mut request =
            reconstruct_request(method, &fitted.subject, &fitted.decoders, s(&model), &out);
        request.options.samples = 1;
        request.options.steps = 4;
        request.options.limit = Some(3);
        reconstruct(&request);
        out
    };

    // z-only writes the decoded-z images; c-only writes samples at the model's size.
    let z_only = ablation("z-only");
    assert_eq!(
        std::fs::read_dir(z_only.join("decoded-z")).unwrap().count(),
        3
    );
    assert!(!z_only.join("sample-1").exists());
    let c_only = ablation("c-only");
    let png = std::fs::read_dir(c_only.join("sample-1"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(png_size(&png.path()), (32, 32));
}

/// (height, width) from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (h, w)
}

/// The same route on CompVis/stable-diffusion-v1-4 from the Hugging Face cache (or the
/// diffusers folder in BRAINRECON_SD14). Real weights cannot ship with the project, so this
/// runs on request: `cargo test -p brainrecon-routes --test linear -- --ignored`.
#[test]
#[ignore = "needs CompVis/stable-diffusion-v1-4 weights; run with --ignored"]
fn linear_route_on_stable_diffusion_v1_4() {
    let model = std::env::var("BRAINRECON_SD14")
        .unwrap_or_else(|_| "CompVis/stable-diffusion-v1-4".to_string());
    let dir = tempfile::tempdir().unwrap();
    let subject = simulated_subject(dir.path(), 150, 3, 32);
    let (decoders, recons) = (dir.path().join("decoders"), dir.path().join("recons"));
    let vae = features(&subject, &model, "vae");
    // SD1: 512 px native → 320 px → 4×40×40, as in the paper.
    assert_eq!(vae["shape"], serde_json::json!([4, 40, 40]));
    let text = features(&subject, &model, "clip-text");
    assert_eq!(text["shape"], serde_json::json!([77, 768]));
    for target in ["z", "c"] {
        fit(&subject, target, &decoders.join(target), "5");
    }
    let mut request = reconstruct_request("linear", &subject, &decoders, &model, &recons);
    request.options.samples = 1;
    request.options.steps = 5;
    request.options.limit = Some(2);
    reconstruct(&request);
    let first = std::fs::read_dir(recons.join("sample-1"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(png_size(&first), (512, 512));
}
