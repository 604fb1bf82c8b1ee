//! The music route end to end on the synthetic music subject: `music demo` (simulate, prepare,
//! fit, retrieve), its scores against chance, the page and playlist, the library cache, the
//! encoding maps of its features, `music generate`, and bad input refused with exit status 2.

use brainrecon_testkit::copy_dir;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn brainrecon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> Output {
    let out = brainrecon(args);
    assert!(
        out.status.success(),
        "brainrecon {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Exit status 2 and every `needles` in the message.
fn refused(args: &[&str], needles: &[&str]) {
    let out = brainrecon(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "brainrecon {}: {err}",
        args.join(" ")
    );
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_demo_decodes_music_embeddings_and_retrieves_music_of_the_heard_genre() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    ok(&["music", "demo", "--out", s(&demo)]);

    // Decoding: identification well above chance; the ROIs that carry only noise do not get there.
    let fit = json(&demo.join("fit/music_fit.json"));
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
    let page = demo.join("page");
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
    let library = demo.join("subject/library");
    let again = dir.path().join("again");
    let out = ok(&[
        "music",
        "retrieve",
        "--fit",
        s(&demo.join("fit")),
        "--library",
        s(&library),
        "--out",
        s(&again),
        "--json",
    ]);
    let second: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(second["embedded_now"], 0);
    assert_eq!(second["clips"], retrieval["clips"]);

    // A library with a file that does not decode: skipped with a warning naming it.
    let small = dir.path().join("small-library");
    std::fs::create_dir_all(small.join("jazz")).unwrap();
    std::fs::copy(
        library.join("jazz/jazz.00000.wav"),
        small.join("jazz/jazz.00000.wav"),
    )
    .unwrap();
    std::fs::write(small.join("jazz/broken.wav"), b"RIFF not really").unwrap();
    // A 48-byte WAV claiming 4.29 GHz: refused from its header, never resampled.
    let mut ghz = std::fs::read(library.join("jazz/jazz.00000.wav")).unwrap();
    ghz.truncate(48);
    ghz[4..8].copy_from_slice(&40u32.to_le_bytes());
    ghz[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
    ghz[40..44].copy_from_slice(&4u32.to_le_bytes());
    std::fs::write(small.join("jazz/ghz.wav"), ghz).unwrap();
    let out = ok(&[
        "music",
        "retrieve",
        "--fit",
        s(&demo.join("fit")),
        "--library",
        s(&small),
        "--out",
        s(&dir.path().join("p2")),
        "--top-k",
        "1",
        "--json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: skipped") && err.contains("broken.wav"),
        "{err}"
    );
    assert!(
        err.contains("ghz.wav") && err.contains("sample rate"),
        "{err}"
    );
    let third: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            third["library_files"].as_u64(),
            third["skipped"].as_array().unwrap().len()
        ),
        (Some(1), 2)
    );

    encoding_maps(dir.path(), &demo);
    generation(dir.path(), &demo);
    bad_input(dir.path(), &demo);
}

/// The fit's per-TR embeddings as an encoding band: the voxels the simulator drives are
/// predicted, the noise voxels are not.
fn encoding_maps(dir: &Path, demo: &Path) {
    let enc = dir.join("encoding");
    let features = format!("clap={}", s(&demo.join("fit/features/clap-audio")));
    ok(&[
        "encode-runs",
        "--subject",
        s(&demo.join("runs")),
        "--bands",
        &features,
        "--test-runs",
        "task-Test_run-01,task-Test_run-02",
        "--permutations",
        "100",
        "--out",
        s(&enc),
    ]);
    let r = brainrecon_formats::npy::read_f32(&enc.join("r.npy"))
        .unwrap()
        .data;
    let group = brainrecon_formats::npy::read_i64(&demo.join("subject/truth/voxel_group.npy"))
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

fn bad_input(dir: &Path, demo: &Path) {
    let (runs, sim, fit) = (demo.join("runs"), demo.join("subject"), demo.join("fit"));
    let atlas = sim.join("derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz");
    let stimuli = sim.join("stimuli/genres");
    let out = dir.join("bad");
    // A library without audio.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), b"no music here").unwrap();
    refused(
        &[
            "music",
            "retrieve",
            "--fit",
            s(&fit),
            "--library",
            s(&empty),
            "--out",
            s(&out),
        ],
        &[s(&empty), "audio files"],
    );
    // clap-text without captions.
    refused(
        &[
            "music",
            "fit",
            "--runs",
            s(&runs),
            "--stimuli",
            s(&stimuli),
            "--atlas",
            s(&atlas),
            "--out",
            s(&out),
            "--embedding",
            "clap-text",
        ],
        &["--captions"],
    );
    refused(
        &[
            "music",
            "fit",
            "--runs",
            s(&runs),
            "--stimuli",
            s(&stimuli),
            "--atlas",
            s(&atlas),
            "--out",
            s(&out),
            "--embedding",
            "mulan",
        ],
        &["--embedding", "clap-audio"],
    );
    // A stimulus folder without the tracks.
    refused(
        &[
            "music",
            "fit",
            "--runs",
            s(&runs),
            "--stimuli",
            s(&empty),
            "--atlas",
            s(&atlas),
            "--out",
            s(&out),
        ],
        &["GTZAN track"],
    );
    // An event past the end of its run.
    let moved = dir.join("runs-moved");
    copy_dir(&runs, &moved);
    let events = std::fs::read_dir(moved.join("events"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&events).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let cells: Vec<&str> = lines[3].split('\t').collect();
    lines[3] = std::iter::once("9000.0")
        .chain(cells[1..].iter().copied())
        .collect::<Vec<_>>()
        .join("\t");
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    refused(
        &[
            "music",
            "fit",
            "--runs",
            s(&moved),
            "--stimuli",
            s(&stimuli),
            "--atlas",
            s(&atlas),
            "--out",
            s(&out),
        ],
        &[s(&events), "row 3", "past the end of the run"],
    );
}

#[test]
fn help_has_examples() {
    for group in ["fit", "retrieve", "demo"] {
        let out = ok(&["music", group, "--help"]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Example:"),
            "music {group}"
        );
    }
    let out = ok(&["--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Music from brain activity"));
    let out = ok(&["music", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("generate"));
}

fn workspace(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// The tiny MusicGen of the golden test plus the T5 tokenizer fixture (its 50 pieces fit the
/// tiny T5's vocab_size).
fn musicgen_folder(to: &Path, with_tokenizer: bool) {
    std::fs::create_dir_all(to).unwrap();
    let model = workspace("crates/audio/tests/fixtures/musicgen/model");
    for f in ["config.json", "generation_config.json", "model.safetensors"] {
        std::fs::copy(model.join(f), to.join(f)).unwrap();
    }
    if with_tokenizer {
        let tokenizer = workspace("crates/language/tests/fixtures/t5_tokenizer");
        for f in ["tokenizer.json", "tokenizer_config.json"] {
            std::fs::copy(tokenizer.join(f), to.join(f)).unwrap();
        }
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
/// transformers) turns them into WAV files, seeded; bad input is refused with exit status 2.
fn generation(dir: &Path, demo: &Path) {
    let (fit, captions) = (demo.join("fit"), demo.join("subject/stimuli/captions.tsv"));
    let musicgen = dir.join("musicgen");
    musicgen_folder(&musicgen, true);
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
    let generate = |out: &Path, seed: &str, extra: &[&str]| -> Value {
        let mut args = vec![
            "music",
            "generate",
            "--fit",
            s(&fit),
            "--captions",
            s(&captions),
            "--musicgen",
            s(&musicgen),
            "--out",
            s(out),
            "--seconds",
            "0.03",
            "--seed",
            seed,
            "--json",
        ];
        args.extend_from_slice(extra);
        let summary: Value = serde_json::from_slice(&ok(&args).stdout).unwrap();
        assert_eq!(summary, json(&out.join("generation.json")));
        summary
    };
    let out = dir.join("gen");
    let summary = generate(&out, "7", &[]);

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
    let again = dir.join("again");
    let second = generate(&again, "7", &[]);
    let other = dir.join("other");
    let third = generate(&other, "8", &[]);
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
    let a = generate(&greedy[0], "1", &["--top-k", "0", "--guidance", "1"]);
    let b = generate(&greedy[1], "2", &["--top-k", "0", "--guidance", "1"]);
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

    // --keep-test-captions searches the whole bank.
    let kept = generate(&dir.join("kept"), "7", &["--keep-test-captions"]);
    assert_eq!(
        (
            kept["bank_size"].as_u64().unwrap() as usize,
            kept["excluded"].as_u64()
        ),
        (bank.len(), Some(0))
    );

    // Bad input: exit 2 and a message naming what is wrong.
    let base = |out: &Path| {
        vec![
            "music".to_string(),
            "generate".into(),
            "--fit".into(),
            s(&fit).into(),
            "--captions".into(),
            s(&captions).into(),
            "--musicgen".into(),
            s(&musicgen).into(),
            "--out".into(),
            s(out).into(),
            "--seconds".into(),
            "0.03".into(),
        ]
    };
    let with = |out: &Path, key: &str, value: &str| -> Vec<String> {
        let mut a = base(out);
        let i = a.iter().position(|x| x == key).unwrap();
        a[i + 1] = value.to_string();
        a
    };
    let run_refused = |args: Vec<String>, needles: &[&str]| {
        refused(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            needles,
        )
    };
    let bad = dir.join("bad");
    // an EnCodec fit: no caption space to search
    let encodec_fit = dir.join("encodec-fit");
    std::fs::create_dir_all(&encodec_fit).unwrap();
    let mut summary_json = json(&fit.join("music_fit.json"));
    summary_json["embedding"] = "encodec".into();
    std::fs::write(encodec_fit.join("music_fit.json"), summary_json.to_string()).unwrap();
    std::fs::copy(
        fit.join("decoded_clips.npy"),
        encodec_fit.join("decoded_clips.npy"),
    )
    .unwrap();
    run_refused(
        with(&bad, "--fit", s(&encodec_fit)),
        &["encodec", "CLAP", "music_fit.json"],
    );
    // a MusicGen folder without its tokenizer
    let bare = dir.join("musicgen-bare");
    musicgen_folder(&bare, false);
    run_refused(
        with(&bad, "--musicgen", s(&bare)),
        &["tokenizer.json", s(&bare)],
    );
    // an empty caption bank, and one with only the test clips' captions
    let empty = dir.join("empty.tsv");
    std::fs::write(&empty, "track\tstart\tcaption\n").unwrap();
    run_refused(
        with(&bad, "--captions", s(&empty)),
        &["empty.tsv", "at least one caption"],
    );
    let own = dir.join("own.tsv");
    let rows: String = test_tracks
        .iter()
        .map(|t| format!("{t}\t0.0\t{}\n", bank[t]))
        .collect();
    std::fs::write(&own, format!("track\tstart\tcaption\n{rows}")).unwrap();
    run_refused(
        with(&bad, "--captions", s(&own)),
        &["own.tsv", "--keep-test-captions"],
    );
    // longer than the decoder's positions allow
    run_refused(with(&bad, "--seconds", "5"), &["--seconds 5", "at most"]);
    assert!(!bad.join("generation.json").exists());
}
