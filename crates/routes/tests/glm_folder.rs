//! The GLM folder through the library: a simulated event-related experiment (fMRIPrep's
//! derivatives and BIDS events) fitted into a folder by `glm::fit_folder`, GLMsingle's four
//! model folders and `glm.json` in it; a rerun with the same settings does nothing; a folder
//! holding something else is refused.

use brainrecon_formats::npy;
use brainrecon_routes::glm::{fit_folder, GlmOptions, Source};
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
