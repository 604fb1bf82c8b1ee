//! The music route end to end on the synthetic music subject, through the library calls behind
//! `music demo` (simulate, `bids prepare`, `music fit`, `music retrieve`): its scores against
//! chance, the page and playlist, the library cache, the encoding maps of its features
//! (`encode-runs`), `music generate` with the tiny MusicGen; and the route from fMRIPrep's
//! derivatives (`bids prepare --fmriprep`) to identification. The commands' flags, exit codes
//! and printed output are checked on the binary in crates/cli/tests/music_cli.rs.

use brainrecon_datasets::fmriprep::FmriprepOptions;
use brainrecon_datasets::runs::prepare::{
    prepare, prepare_fmriprep, Layout, MaskChoice, PrepareOptions,
};
use brainrecon_formats::nifti4d::{self, Storage};
use brainrecon_routes::music::generate::{generate_music, GenerateOptions};
use brainrecon_routes::music::{
    default_alphas, fit_music, retrieve, EmbeddingKind, MusicFitOptions, RetrieveOptions,
    WindowSpec,
};
use brainrecon_routes::naturalistic::{encode_run_set, Align, Band, Delays, EncodeRunsOptions};
use brainrecon_simulate::request;
use brainrecon_testkit::json;
use candle_core::Device;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `simulate --kind music --seed 0` (the demo's subject), made once for both tests.
fn simulated() -> &'static Path {
    static SIM: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, sim) = SIM.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let sim = dir.path().join("subject");
        request::run(&request::Request {
            ..request::Request::new(sim.clone(), request::Kind::Music)
        })
        .unwrap();
        (dir, sim)
    });
    sim
}

/// `bids prepare` of the Training and Test runs of `root` (with fMRIPrep's options, of the
/// fMRIPrep folder `root` with the raw dataset `sim`).
fn prepare_runs(
    root: &Path,
    mask: MaskChoice,
    fmriprep: Option<&FmriprepOptions>,
    out: &Path,
) -> String {
    let opts = PrepareOptions {
        root: root.to_path_buf(),
        subject: "001".into(),
        tasks: vec!["Training".into(), "Test".into()],
        sessions: Vec::new(),
        out: out.to_path_buf(),
        layout: match fmriprep {
            Some(_) => Layout::Fmriprep,
            None => Layout::Bids,
        },
        mask,
        detrend: None,
        drop_seconds: None,
        progress: false,
        keep_units: false,
    };
    let report = match fmriprep {
        Some(f) => prepare_fmriprep(&opts, f),
        None => prepare(&opts),
    }
    .unwrap();
    report.text()
}

/// `music fit`'s options with its flags' defaults.
fn fit_options(runs: &Path, sim: &Path, out: &Path) -> MusicFitOptions {
    MusicFitOptions {
        runs: runs.to_path_buf(),
        stimuli: sim.join("stimuli/genres"),
        atlas: sim.join("derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz"),
        atlas_names: None,
        out: out.to_path_buf(),
        embedding: EmbeddingKind::ClapAudio,
        model: "genres-clap".into(),
        captions: None,
        windows: WindowSpec {
            seconds: 10.0,
            step: 1.5,
            delay: 0.0,
        },
        top_rois: 6,
        folds: 5,
        alphas: default_alphas(),
        test_task: "Test".into(),
        drop_first: true,
        min_roi_voxels: 10,
        seed: 0,
        progress: false,
    }
}

/// `music retrieve --fit FIT --library LIBRARY --out OUT --top-k K` as JSON.
fn retrieved(fit: &Path, library: &Path, out: &Path, top_k: usize) -> Value {
    let summary = retrieve(
        &RetrieveOptions {
            fit: fit.to_path_buf(),
            library: library.to_path_buf(),
            out: out.to_path_buf(),
            top_k,
            cache: None,
            progress: false,
        },
        &Device::Cpu,
    )
    .unwrap();
    serde_json::to_value(summary).unwrap()
}

#[test]
fn the_demo_decodes_music_embeddings_and_retrieves_music_of_the_heard_genre() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulated();
    // The demo's steps: the subject, its runs, the fit, the page.
    let demo = dir.path().join("demo");
    let (runs, fit_dir, page) = (demo.join("runs"), demo.join("fit"), demo.join("page"));
    prepare_runs(
        sim,
        MaskChoice::File(sim.join("derivatives/mask/sub-001_mask.nii.gz")),
        None,
        &runs,
    );
    fit_music(&fit_options(&runs, sim, &fit_dir), &Device::Cpu).unwrap();
    let library = sim.join("library");
    retrieved(&fit_dir, &library, &page, 5);

    // Decoding: identification well above chance; the ROIs that carry only noise do not get there.
    let fit = json(&fit_dir.join("music_fit.json"));
    let (windows, clips) = (
        fit["identification_windows"].as_f64().unwrap(),
        fit["identification_clips"].as_f64().unwrap(),
    );
    assert!(
        windows > 0.75 && clips > 0.75,
        "identification {windows} / {clips}"
    );
    let rois = fit["rois"].as_array().unwrap();
    let kept: Vec<&str> = rois
        .iter()
        .filter(|r| r["kept"] == true)
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(kept.len(), 6);
    let semantic = [
        "S_temporal_sup",
        "G_temporal_middle",
        "G_front_inf-Triangul",
        "G_pariet_inf-Angular",
    ];
    assert!(
        kept.iter()
            .filter(|k| semantic.iter().any(|n| k.ends_with(n)))
            .count()
            >= 4,
        "kept {kept:?}"
    );
    for roi in rois {
        let name = roi["name"].as_str().unwrap();
        if ["G_cuneus", "G_precentral", "G_front_sup"]
            .iter()
            .any(|n| name.ends_with(n))
        {
            let alone = roi["test_identification"].as_f64().unwrap();
            assert!(alone < 0.72, "noise ROI {name}: {alone}");
        }
    }
    let test_clips = fit["test_clips"].as_array().unwrap().len();
    assert_eq!(test_clips, 10);
    assert_eq!(fit["test_windows"], 40);

    // Retrieval: the first match's genre is the heard clip's far above chance.
    let retrieval = json(&page.join("retrieval.json"));
    let top1 = retrieval["top1_genre_accuracy"].as_f64().unwrap();
    assert_eq!(retrieval["genre_chance"].as_f64().unwrap(), 0.1);
    assert!(top1 >= 0.5, "top-1 genre accuracy {top1}");
    let html = std::fs::read_to_string(page.join("index.html")).unwrap();
    assert_eq!(html.matches("<audio").count(), test_clips * 6);
    let m3u = std::fs::read_to_string(page.join("playlist.m3u")).unwrap();
    assert!(m3u.starts_with("#EXTM3U\n"));
    assert_eq!(
        m3u.lines().filter(|l| !l.starts_with('#')).count(),
        test_clips * 6
    );
    // Every playlist entry resolves from the page's folder.
    for line in m3u.lines().filter(|l| !l.starts_with('#')) {
        assert!(page.join(line).is_file(), "{line}");
    }
    let first = retrieval["clips"][0]["track"].as_str().unwrap().to_string();
    let header = std::fs::read(page.join(format!("stimuli/{first}.wav"))).unwrap();
    assert_eq!(header.len(), 44 + 15 * 22050 * 2, "a 15-s 16-bit mono clip");

    // A second retrieval reads the library's embeddings from the cache and finds the same.
    let second = retrieved(&fit_dir, &library, &dir.path().join("again"), 5);
    assert_eq!(second["embedded_now"], 0);
    assert_eq!(second["clips"], retrieval["clips"]);

    // A library with a file that does not decode: skipped, named with the reason.
    let small = dir.path().join("small-library");
    brainrecon_testkit::library_with_bad_wavs(&library, &small);
    let third = retrieved(&fit_dir, &small, &dir.path().join("p2"), 1);
    let skipped = third["skipped"].as_array().unwrap();
    assert_eq!(
        (third["library_files"].as_u64(), skipped.len()),
        (Some(1), 2)
    );
    let reason = |name: &str| -> String {
        let row = skipped
            .iter()
            .find(|s| s[0].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} not skipped: {third}"));
        row[1].as_str().unwrap().to_string()
    };
    reason("broken.wav");
    let ghz_reason = reason("ghz.wav");
    assert!(ghz_reason.contains("sample rate"), "{ghz_reason}");

    encoding_maps(dir.path(), sim, &runs, &fit_dir);
    generation(dir.path(), sim, &fit_dir);
}

/// The fit's per-TR embeddings as an encoding band (`encode-runs --bands clap=FEATURES
/// --test-runs task-Test_run-01,task-Test_run-02 --permutations 100`): the voxels the
/// simulator drives are predicted, the noise voxels are not.
fn encoding_maps(dir: &Path, sim: &Path, runs: &Path, fit: &Path) {
    let enc = dir.join("encoding");
    let band = format!("clap={}", fit.join("features/clap-audio").display());
    let opts = EncodeRunsOptions {
        out: enc.clone(),
        bands: vec![Band::parse(&band).unwrap()],
        test_runs: vec!["task-Test_run-01".into(), "task-Test_run-02".into()],
        folds: None,
        allow_weak_bands: false,
        align: Align::parse("mean").unwrap(),
        delays: Delays::from_lists(&[], &[]).unwrap(),
        pca: None,
        alphas: vec![1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0],
        n_iter: 20,
        permutations: 100,
        block: 10,
        unique: false,
        seed: 0,
        cortex: "auto".parse().unwrap(),
        command: "encode-runs".into(),
    };
    encode_run_set(
        runs,
        &opts,
        "word2vec-movie",
        "last",
        &Device::Cpu,
        &mut |_| {},
    )
    .unwrap();
    let r = brainrecon_formats::npy::read_f32(&enc.join("r.npy"))
        .unwrap()
        .data;
    let group = brainrecon_formats::npy::read_i64(&sim.join("truth/voxel_group.npy"))
        .unwrap()
        .data;
    assert_eq!(r.len(), group.len());
    let mean = |g: i64| {
        let v: Vec<f64> = r
            .iter()
            .zip(&group)
            .filter(|(_, &k)| k == g)
            .map(|(&x, _)| x as f64)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (acoustic, semantic, noise) = (mean(0), mean(1), mean(2));
    assert!(
        acoustic > 0.2 && semantic > 0.1 && noise.abs() < 0.05,
        "r {acoustic} {semantic} {noise}"
    );
}

fn workspace(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// The tiny MusicGen of the golden test plus the T5 tokenizer fixture (its 50 pieces fit the
/// tiny T5's vocab_size).
fn musicgen_folder(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let model = workspace("crates/audio/tests/fixtures/musicgen/model");
    for f in ["config.json", "generation_config.json", "model.safetensors"] {
        std::fs::copy(model.join(f), to.join(f)).unwrap();
    }
    let tokenizer = workspace("crates/language/tests/fixtures/t5_tokenizer");
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tokenizer.join(f), to.join(f)).unwrap();
    }
}

/// 16-bit mono samples of a WAV file written by `write_pcm16` (44-byte header).
fn pcm16(path: &Path) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"RIFF");
    bytes[44..]
        .chunks(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// `music generate`: the decoded genres-clap embeddings pick the nearest captions of the
/// stimulus caption bank (the test clips' own left out); the tiny random-weight MusicGen of the
/// golden test (with the T5 tokenizer fixture tools/fixtures/t5_tokenizer.py wrote with
/// transformers) turns them into WAV files, seeded.
fn generation(dir: &Path, sim: &Path, fit: &Path) {
    let captions = sim.join("stimuli/captions.tsv");
    let musicgen = dir.join("musicgen");
    musicgen_folder(&musicgen);
    let config = json(&musicgen.join("config.json"));
    let vocab = config["text_encoder"]["vocab_size"].as_u64().unwrap() as usize;
    let pieces = json(&musicgen.join("tokenizer.json"))["model"]["vocab"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        pieces <= vocab,
        "{pieces} tokenizer pieces, T5 vocab_size {vocab}"
    );

    let seconds = 0.03;
    // `music generate --seconds 0.03 --seed SEED` [--top-k 0 --guidance 1]
    // [--keep-test-captions]; its summary is generation.json.
    let generate = |out: &Path, seed: u64, greedy: bool, keep_test: bool| -> Value {
        let summary = generate_music(
            &GenerateOptions {
                fit: fit.to_path_buf(),
                captions: captions.clone(),
                musicgen: musicgen.display().to_string(),
                out: out.to_path_buf(),
                seconds,
                guidance: greedy.then_some(1.0),
                top_k: greedy.then_some(0),
                seed,
                exclude_test: !keep_test,
                progress: false,
            },
            &Device::Cpu,
        )
        .unwrap();
        let summary = serde_json::to_value(summary).unwrap();
        assert_eq!(summary, json(&out.join("generation.json")));
        summary
    };
    let out = dir.join("gen");
    let summary = generate(&out, 7, false, false);

    // The audio: seconds × the codec's rate, within one frame (hop = the product of the
    // upsampling ratios), not silent.
    let codec = &config["audio_encoder"];
    let rate = codec["sampling_rate"].as_u64().unwrap() as f64;
    let hop: u64 = codec["upsampling_ratios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_u64().unwrap())
        .product();
    assert_eq!(summary["sample_rate"].as_f64().unwrap(), rate);
    let clips = summary["clips"].as_array().unwrap();
    let test_tracks: BTreeSet<String> = json(&fit.join("music_fit.json"))["test_clips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}.{:05}",
                c["genre"].as_str().unwrap(),
                c["track"].as_u64().unwrap()
            )
        })
        .collect();
    assert_eq!(clips.len(), test_tracks.len());
    for clip in clips {
        let samples = pcm16(&out.join(clip["file"].as_str().unwrap()));
        assert!(
            (samples.len() as f64 - seconds * rate).abs() <= hop as f64,
            "{} samples",
            samples.len()
        );
        assert!(
            samples.iter().filter(|&&v| v != 0).count() > samples.len() / 2,
            "silent: {clip}"
        );
        assert_eq!(
            clip["file"],
            format!("generated/{}.wav", clip["track"].as_str().unwrap())
        );
    }

    // The chosen captions come from the bank's other clips, never a test clip's own.
    let bank: BTreeMap<String, String> = std::fs::read_to_string(&captions)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split('\t').collect();
            (cells[0].to_string(), cells[2].to_string())
        })
        .collect();
    assert_eq!(
        summary["bank_size"].as_u64().unwrap() as usize,
        bank.len() - test_tracks.len()
    );
    assert_eq!(
        summary["excluded"].as_u64().unwrap() as usize,
        test_tracks.len()
    );
    for clip in clips {
        let chosen = clip["caption_track"].as_str().unwrap();
        assert!(!test_tracks.contains(chosen), "{clip}");
        assert_eq!(bank[chosen], clip["caption"].as_str().unwrap());
        assert_eq!(
            clip["caption_genre"].as_str().unwrap(),
            chosen.split('.').next().unwrap()
        );
    }

    // The decoded embedding is near captions of the heard genre far more often than chance
    // (measured: 7 of 10 clips; chance 1 in 10).
    let accuracy = summary["caption_genre_accuracy"].as_f64().unwrap();
    let chance = summary["genre_chance"].as_f64().unwrap();
    eprintln!("chosen caption's genre = heard genre: {accuracy} (chance {chance})");
    assert_eq!(chance, 0.1);
    assert!(accuracy >= 0.4, "caption genre accuracy {accuracy}");

    // Seeded: the same seed gives the same bytes, another seed other audio for the same captions.
    let again = dir.join("again-gen");
    let second = generate(&again, 7, false, false);
    let other = dir.join("other");
    let third = generate(&other, 8, false, false);
    let bytes = |root: &Path, clip: &Value| {
        std::fs::read(root.join(clip["file"].as_str().unwrap())).unwrap()
    };
    let mut differing = 0;
    for (i, clip) in clips.iter().enumerate() {
        assert_eq!(bytes(&out, clip), bytes(&again, &second["clips"][i]));
        assert_eq!(clip["caption"], third["clips"][i]["caption"]);
        differing += usize::from(bytes(&out, clip) != bytes(&other, &third["clips"][i]));
    }
    assert!(
        differing >= clips.len() - 1,
        "only {differing} clips changed with the seed"
    );
    assert_eq!(
        summary["top_k"], 50,
        "generation_config.json samples; transformers' top_k 50"
    );

    // Greedy needs no draws: two seeds, the same audio.
    let greedy = [dir.join("greedy-a"), dir.join("greedy-b")];
    let a = generate(&greedy[0], 1, true, false);
    let b = generate(&greedy[1], 2, true, false);
    assert_eq!(
        (a["top_k"].as_u64(), a["guidance"].as_f64()),
        (Some(0), Some(1.0))
    );
    for (x, y) in a["clips"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["clips"].as_array().unwrap())
    {
        assert_eq!(bytes(&greedy[0], x), bytes(&greedy[1], y));
    }

    // Keeping the test captions searches the whole bank.
    let kept = generate(&dir.join("kept"), 7, false, true);
    assert_eq!(
        (
            kept["bank_size"].as_u64().unwrap() as usize,
            kept["excluded"].as_u64()
        ),
        (bank.len(), Some(0))
    );
}

const SPACE: &str = "space-MNI152NLin2009cAsym";

/// fMRIPrep's tree for every raw run of `sim`: preprocessed series (the raw values, gzipped),
/// a brain mask, a sidecar and a confounds table whose motion columns are small, known drifts.
fn fmriprep_tree(sim: &Path, out: &Path) {
    let func = out.join("sub-001/func");
    std::fs::create_dir_all(&func).unwrap();
    std::fs::write(
        out.join("dataset_description.json"),
        r#"{"Name": "fMRIPrep - fMRI PREProcessing workflow", "BIDSVersion": "1.4.0", "DatasetType": "derivative", "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.1"}]}"#,
    )
    .unwrap();
    let mask = sim.join("derivatives/mask/sub-001_mask.nii.gz");
    let mut raw: Vec<_> = std::fs::read_dir(sim.join("sub-001/func"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.to_string_lossy().ends_with("_bold.nii"))
        .collect();
    raw.sort();
    assert!(raw.len() >= 3);
    for bold in raw {
        let name = bold
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("_bold.nii", "");
        let mut volumes = Vec::new();
        let header = nifti4d::for_each_volume(&bold, |_, v| {
            volumes.push(v.to_vec());
            Ok(())
        })
        .unwrap();
        let preproc = func.join(format!("{name}_{SPACE}_desc-preproc_bold.nii.gz"));
        nifti4d::write_series(
            &preproc,
            header.shape,
            1.5,
            &header.affine,
            Storage::Float32,
            &volumes,
        )
        .unwrap();
        std::fs::write(
            func.join(format!("{name}_{SPACE}_desc-preproc_bold.json")),
            r#"{"RepetitionTime": 1.5, "SkullStripped": false}"#,
        )
        .unwrap();
        std::fs::copy(
            &mask,
            func.join(format!("{name}_{SPACE}_desc-brain_mask.nii.gz")),
        )
        .unwrap();
        std::fs::write(
            func.join(format!("{name}_desc-confounds_timeseries.tsv")),
            confounds(volumes.len()),
        )
        .unwrap();
    }
}

/// A confounds table in fMRIPrep's column names: `n/a` in the first row of derivatives and FD;
/// fMRIPrep's discrete cosine basis of a 128-s high-pass filter (`cosineNN`).
fn confounds(n: usize) -> String {
    let n_cosines = (2.0 * n as f64 * 1.5 / 128.0).floor() as usize;
    let cosines: Vec<String> = (0..n_cosines).map(|k| format!("cosine{k:02}")).collect();
    let mut columns: Vec<&str> = vec![
        "global_signal",
        "csf",
        "white_matter",
        "trans_x",
        "trans_x_derivative1",
        "trans_y",
        "trans_y_derivative1",
        "trans_z",
        "trans_z_derivative1",
        "rot_x",
        "rot_x_derivative1",
        "rot_y",
        "rot_y_derivative1",
        "rot_z",
        "rot_z_derivative1",
        "framewise_displacement",
        "std_dvars",
    ];
    columns.extend(cosines.iter().map(String::as_str));
    let mut text = columns.join("\t") + "\n";
    for t in 0..n {
        let x = t as f64 / n as f64;
        let row: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(c, name)| {
                if t == 0
                    && (name.ends_with("derivative1")
                        || name.starts_with("framewise")
                        || name.starts_with("std_dvars"))
                {
                    return "n/a".to_string();
                }
                let value = match *name {
                    "framewise_displacement" => 0.05,
                    "std_dvars" => 1.0,
                    _ if name.starts_with("cosine") => {
                        let k: f64 = name[6..].parse::<f64>().unwrap() + 1.0;
                        (2.0 / n as f64).sqrt()
                            * (std::f64::consts::PI * k * (t as f64 + 0.5) / n as f64).cos()
                    }
                    _ if name.ends_with("derivative1") => 0.001 * (c as f64 + 1.0),
                    // Jitter around the baseline, as head motion and tissue signals of a still
                    // subject look; nothing slow, which would take the music's own signal.
                    _ => 0.01 * (jitter(t, c) + 0.1 * x),
                };
                format!("{value:.6}")
            })
            .collect();
        text += &(row.join("\t") + "\n");
    }
    text
}

/// A deterministic value in [-0.5, 0.5) for row `t`, column `c`.
fn jitter(t: usize, c: usize) -> f64 {
    let h = ((t as u64) << 8 | c as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29);
    (h >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}

/// The music route from fMRIPrep's output of a ds003720-layout dataset: the raw runs
/// (ds003720 ships them without motion correction) stand behind fMRIPrep-named derivatives
/// (`*_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz`, brain masks, confounds tables with
/// fMRIPrep's columns), `bids prepare --fmriprep` regresses the confounds (`motion:basic,
/// wm_csf:basic`), and `music fit` reaches identification well above chance; wrong inputs are
/// all reported up front.
#[test]
fn music_route_runs_from_fmriprep_derivatives_to_identification() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulated();
    let (deriv, runs, fit) = (
        dir.path().join("derivatives/fmriprep"),
        dir.path().join("runs"),
        dir.path().join("fit"),
    );
    fmriprep_tree(sim, &deriv);
    let fmriprep = FmriprepOptions::from_flags(
        None,
        Some("motion:basic,wm_csf:basic"),
        None,
        None,
        Some(sim.to_path_buf()),
    )
    .unwrap();
    let prepared = prepare_runs(&deriv, MaskChoice::Auto, Some(&fmriprep), &runs);
    assert!(prepared.contains("prepared sub-001"), "{prepared}");
    // Every wrong input at once, before anything is embedded.
    let wrong = MusicFitOptions {
        stimuli: dir.path().join("no-stimuli"),
        atlas: dir.path().join("no-atlas.nii.gz"),
        ..fit_options(&runs, sim, &fit)
    };
    let err = fit_music(&wrong, &Device::Cpu).unwrap_err();
    assert!(err.is_user_error(), "{err}");
    let err = err.to_string();
    assert!(
        err.contains("no-stimuli") && err.contains("no-atlas.nii.gz"),
        "{err}"
    );
    assert!(!fit.exists());
    let summary = fit_music(&fit_options(&runs, sim, &fit), &Device::Cpu).unwrap();
    let (windows, clips) = (summary.identification_windows, summary.identification_clips);
    assert!(
        windows > 0.75 && clips > 0.75,
        "identification {windows} / {clips}"
    );
}
