//! genres-clap, the project's own CLAP: its training is seeded and resumes to the same bytes,
//! and the shipped model retrieves held-out synthetic clips by genre.

use brainrecon_audio::clap::ClapModel;
use brainrecon_nn::init::init_parameters_with;
use brainrecon_testkit::copy_dir;
use brainrecon_zoo::genres_clap::data::HeldOut;
use brainrecon_zoo::genres_clap::quality::retrieval;
use brainrecon_zoo::genres_clap::train::{train_genres_clap, ClapProgress};
use brainrecon_zoo::genres_clap::{load_clap, GenresClapConfig};
use candle_core::{DType, Device};

const MODEL_FILES: [&str; 5] = [
    "config.json",
    "model.safetensors",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
];

#[test]
fn training_is_seeded_and_resumes_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = GenresClapConfig {
        checkpoint_every: 2,
        ..GenresClapConfig::tiny(4)
    };
    let device = Device::Cpu;
    let whole = dir.path().join("whole");
    let mut held_out_reports = 0;
    let summary = train_genres_clap(&whole, &config, 3, &device, &mut |e| {
        if let ClapProgress::HeldOut { .. } = e {
            held_out_reports += 1;
        }
    })
    .unwrap();
    assert_eq!(summary.losses.len(), 4);
    assert!(
        summary.losses.iter().all(|l| l.is_finite()),
        "{:?}",
        summary.losses
    );
    assert_eq!(held_out_reports, 2, "after step 2 and at the end");
    assert_eq!(summary.resumed_from, None);
    // An interruption after step 2: the last checkpoint and the outputs are gone.
    let broken = dir.path().join("broken");
    copy_dir(&whole.join(".train"), &broken.join(".train"));
    std::fs::remove_dir_all(broken.join(".train/clap/step-4")).unwrap();
    let resumed = train_genres_clap(&broken, &config, 3, &device, &mut |_| {}).unwrap();
    assert_eq!(resumed.resumed_from, Some(2));
    assert_eq!(resumed.losses, summary.losses);
    for file in MODEL_FILES {
        assert_eq!(
            std::fs::read(whole.join(file)).unwrap(),
            std::fs::read(broken.join(file)).unwrap(),
            "{file}"
        );
    }
    // Other settings refuse the checkpoints.
    let e = train_genres_clap(&whole, &GenresClapConfig::tiny(6), 3, &device, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("run.json") && e.contains("other settings"),
        "{e}"
    );
    // The folder loads as a CLAP, with the code that reads laion/clap-htsat-unfused.
    let loaded = load_clap(whole.to_str().unwrap(), &device).unwrap();
    assert_eq!(loaded.model.config.audio_config.spec_size, 128);
    assert_eq!(loaded.feature_extractor.config.sampling_rate, 22_050);
    assert!(whole.join("training.json").is_file() && whole.join("loss.svg").is_file());
}

#[test]
fn genres_clap_retrieves_held_out_clips_by_genre() {
    let device = Device::Cpu;
    let clap = load_clap("genres-clap", &device).unwrap();
    let shipped = GenresClapConfig::genres_clap().feature_extractor();
    assert_eq!(clap.feature_extractor.config, shipped.config);
    // 50 held-out clips (5 per genre), their middle 10 s through the shipped front end
    let held_out = HeldOut::new(50, &clap.feature_extractor, &device).unwrap();
    let trained = retrieval(&clap.model, &clap.tokenizer, &held_out, &device).unwrap();
    eprintln!("genres-clap on held-out clips: {trained:?}");
    assert!(trained.text_to_audio_genre >= 0.8, "{trained:?}");
    assert!(trained.audio_to_text_genre >= 0.6, "{trained:?}");
    // The same architecture untrained, with the trained mel statistics, is near chance (0.1).
    let config = &clap.model.config;
    let (untrained, params) = init_parameters_with(
        |vb| ClapModel::new(vb, config),
        0,
        DType::F32,
        &device,
        ClapModel::init_rule(config),
    )
    .unwrap();
    let norm = &clap.model.audio_model.batch_norm;
    for (leaf, value) in [
        ("running_mean", &norm.running_mean),
        ("running_var", &norm.running_var),
    ] {
        let name = format!("audio_model.audio_encoder.batch_norm.{leaf}");
        params.get(&name).unwrap().set(value).unwrap();
    }
    let chance = retrieval(&untrained, &clap.tokenizer, &held_out, &device).unwrap();
    eprintln!("untrained: {chance:?}");
    assert!(chance.text_to_audio_genre < 0.4, "{chance:?}");
}
