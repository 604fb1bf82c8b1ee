//! The GLM folder through the library: a simulated event-related experiment (fMRIPrep's
//! derivatives and BIDS events) fitted into a folder by `glm::fit_folder`, GLMsingle's four
//! model folders and `glm.json` in it; a rerun with the same settings does nothing; a folder
//! holding something else is refused. And a tiny NSD session fitted from its time series
//! (`glm --nsd`) and compared with GLMsingle's own fit of it (`glm compare`).

use brainrecon_formats::npy;
use brainrecon_routes::glm::{compare_nsd, fit_folder, CompareOptions, GlmOptions, Source};
use brainrecon_simulate::events::{simulate_events, EventsOptions};

#[test]
fn a_small_experiment_is_fitted_into_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let mut events = EventsOptions::new(&sim);
    events.seed = 1;
    events.runs = 5;
    events.train_images = 50;
    events.test_images = 10;
    events.volume_shape = [24, 26, 20];
    events.image_size = 16;
    let truth = simulate_events(&events).unwrap();

    let out = dir.path().join("glm");
    let opts = GlmOptions {
        source: Source::Fmriprep {
            fmriprep: sim.join("derivatives/fmriprep"),
            bids_root: sim.clone(),
        },
        subject: "01".into(),
        tasks: vec!["images".into()],
        sessions: Vec::new(),
        space: Some("T1w".into()),
        mask: None,
        confounds: "none".into(),
        condition_column: None,
        stimdur: None,
        out: out.clone(),
        cortex: Default::default(),
        progress: false,
    };
    let fitted = fit_folder(&opts).unwrap();
    assert!(!fitted.already && fitted.resumed.is_empty());
    // The simulation's R² and HRF index on fsaverage5.
    let cortex: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("cortex/cortex.json")).unwrap()).unwrap();
    assert_eq!(cortex["cortex"], "fsaverage5");
    let names: Vec<&str> = cortex["maps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(
        names[0].starts_with("R² (%)") && names[1].starts_with("HRF index"),
        "{names:?}"
    );
    assert!(out.join("cortex/viewer.html").is_file());
    let meta = &fitted.meta;
    assert_eq!(meta.trials.len(), truth.trials.len());
    assert_eq!(meta.runs.len(), 5);
    assert_eq!(
        meta.models,
        [
            "TYPEA_ONOFF",
            "TYPEB_FITHRF",
            "TYPEC_FITHRF_GLMDENOISE",
            "TYPED_FITHRF_GLMDENOISE_RR"
        ]
    );
    for model in &meta.models {
        let betas = npy::read_f32(&out.join(model).join("betasmd.npy")).unwrap();
        let per_voxel = if model == "TYPEA_ONOFF" {
            vec![meta.n_voxels]
        } else {
            vec![meta.n_voxels, meta.trials.len()]
        };
        assert_eq!(betas.shape, per_voxel, "{model}");
        assert!(betas.data.iter().all(|b| b.is_finite()), "{model}");
        assert!(!dir
            .path()
            .join("glm")
            .join(format!("{model}.partial"))
            .exists());
    }
    assert!(out.join("glm.json").is_file() && out.join("timeseries").is_dir());
    assert!(!out.join(".stages").exists(), "stages left after the fit");

    let again = fit_folder(&opts).unwrap();
    assert!(again.already);
    assert_eq!(
        serde_json::to_value(&again.meta).unwrap(),
        serde_json::to_value(meta).unwrap()
    );

    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let refused = fit_folder(&GlmOptions {
        out: other.clone(),
        ..opts
    })
    .unwrap_err();
    assert!(
        refused.to_string().contains("a folder with other contents"),
        "{refused}"
    );
    assert!(other.join("notes.txt").exists());
}

/// A tiny NSD session in nsddata_timeseries' layout (tools/fixtures/nsd_timeseries.py: int16
/// runs at 4/3 s, one 73k ID or 0 per volume in the designs, NSD's brain mask and
/// nsdgeneral), whose "released" betas_fithrf_GLMdenoise_RR are GLMsingle's own TYPED fit of
/// the same files. The command line's own checks of it are in crates/cli/tests/glm_nsd.rs.
fn nsd_fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/fixtures/nsd_timeseries")
}

/// `glm --nsd ROOT --subject SUBJECT --session SESSION --out OUT`.
fn nsd_options(
    root: &std::path::Path,
    subject: &str,
    session: &str,
    out: &std::path::Path,
) -> GlmOptions {
    GlmOptions {
        source: Source::Nsd(root.to_path_buf()),
        subject: subject.into(),
        tasks: Vec::new(),
        sessions: vec![session.into()],
        space: None,
        mask: None,
        confounds: "none".into(),
        condition_column: None,
        stimdur: None,
        out: out.to_path_buf(),
        cortex: "auto".parse().unwrap(),
        progress: false,
    }
}

/// `glm compare --glm GLM --nsd ROOT --betas MODEL`, as its `--json` prints it.
fn compare(glm: &std::path::Path, root: &std::path::Path, model: &str) -> serde_json::Value {
    let comparison = compare_nsd(&CompareOptions {
        glm: glm.to_path_buf(),
        nsd: root.to_path_buf(),
        betas: model.into(),
        out: None,
    })
    .unwrap();
    serde_json::to_value(&comparison).unwrap()
}

#[test]
fn an_nsd_session_fitted_from_its_time_series_matches_glmsingle() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("glm-nsd-s01");
    let root = nsd_fixture();
    let fitted = fit_folder(&nsd_options(&root, "subj01", "1", &out)).unwrap();
    let meta = serde_json::to_value(&fitted.meta).unwrap();
    assert_eq!(meta["runs"].as_array().unwrap().len(), 3);
    assert_eq!(meta["trials"].as_array().unwrap().len(), 54);
    assert_eq!(meta["conditions"].as_array().unwrap().len(), 18);
    assert_eq!(meta["condition_column"], "73k_id");
    assert!((meta["tr"].as_f64().unwrap() - 4.0 / 3.0).abs() < 1e-9);
    assert_eq!(meta["stimdur"], 3.0);
    // NSD's trials start on volumes: nothing moved.
    assert!(meta["largest_onset_rounding_seconds"].as_f64().unwrap() < 1e-9);

    // TYPED against GLMsingle's TYPED: the same betas, in the same units.
    let typed = compare(&out, &root, "typed");
    let session = &typed["sessions"][0];
    assert_eq!(session["session"], "01");
    assert_eq!(session["n_trials"], 54);
    let all = &session["all_voxels"];
    assert_eq!(all["n_voxels"], 184);
    let median = all["median_r"].as_f64().unwrap();
    let lower = all["r_quartiles"][0].as_f64().unwrap();
    let ratio = all["median_std_ratio"].as_f64().unwrap();
    assert!(
        median > 0.99 && lower > 0.95,
        "TYPED r {median} (q1 {lower})"
    );
    assert!((ratio - 1.0).abs() < 0.05, "spread ratio {ratio}");
    let general = &session["nsdgeneral"];
    assert!(
        general["n_voxels"].as_u64().unwrap() > 0
            && general["n_voxels"].as_u64() < all["n_voxels"].as_u64()
    );
    assert!(out.join("compare_nsd.json").is_file());
    // TYPEB (no denoising, no ridge) is a different model: clearly further from NSD's.
    let typeb = compare(&out, &root, "typeb");
    let typeb_median = typeb["sessions"][0]["all_voxels"]["median_r"]
        .as_f64()
        .unwrap();
    assert!(
        typeb_median < median - 0.2,
        "TYPEB r {typeb_median}, TYPED {median}"
    );

    // A rerun with the same settings does nothing.
    let again = fit_folder(&nsd_options(&root, "1", "01", &out)).unwrap();
    let text = again.text(&out);
    assert!(again.already && text.contains("already fitted"), "{text}");
}
