//! The music commands on the binary: `music fit` checks every external input before it embeds
//! a window: a run set pointed at a missing atlas, two missing tracks, a track too short for its
//! clip and a wrong model path is refused at once (exit 2) with every one of them named, in a
//! small fraction of the time a fit takes, and nothing written; a track a few hundredths of a
//! second short of its clip's end is accepted (its tail padded with silence) and the fit runs.
//! On that fit: `music retrieve`'s warnings and `--json`, `music generate`'s `--json`, the
//! commands' bad input refused with exit status 2, and their `--help`. The route's numbers (the
//! demo's scores, retrieval, encoding maps, generation, fMRIPrep's derivatives) are checked
//! through the library in crates/routes/tests/music.rs.

use brainrecon_formats::audio::read_audio;
use brainrecon_formats::audio::wav::write_pcm16;
use brainrecon_testkit::{copy_dir, json};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn brainrecon(args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(args)
        .output()
        .unwrap();
    (out, start.elapsed())
}

fn ok(args: &[&str]) -> Duration {
    let (out, took) = brainrecon(args);
    assert!(
        out.status.success(),
        "brainrecon {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// Exit status 2 and every `needles` in the message.
fn refused(args: &[&str], needles: &[&str]) {
    let (out, _) = brainrecon(args);
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

/// A clip of the run set's events: (genre, track number, start, duration).
struct Clip {
    genre: String,
    track: u32,
    start: f64,
    duration: f64,
}

impl Clip {
    fn name(&self) -> String {
        format!("{}.{:05}", self.genre, self.track)
    }

    fn file(&self, stimuli: &Path) -> PathBuf {
        stimuli
            .join(&self.genre)
            .join(format!("{}.wav", self.name()))
    }
}

/// Every row of every events file of the run set, by file name.
fn clips(runs: &Path) -> Vec<(String, Vec<Clip>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(runs.join("events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let rows = std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .skip(1)
                .map(|line| {
                    let c: Vec<&str> = line.split('\t').collect();
                    Clip {
                        genre: c[2].trim_matches('\'').to_string(),
                        track: c[3].parse().unwrap(),
                        start: c[4].parse().unwrap(),
                        duration: c[1].parse().unwrap(),
                    }
                })
                .collect();
            (f.file_name().unwrap().to_str().unwrap().to_string(), rows)
        })
        .collect()
}

/// Rewrites a track to its first `seconds`.
fn shorten(path: &Path, seconds: f64) {
    let audio = read_audio(path).unwrap();
    let keep = (seconds * audio.rate as f64).round() as usize;
    assert!(
        keep < audio.samples.len(),
        "{} is already shorter",
        path.display()
    );
    write_pcm16(path, audio.rate, 1, &audio.samples[..keep]).unwrap();
}

/// Where the last clip cut from `name`'s track ends.
fn last_end(all: &[(String, Vec<Clip>)], name: &str) -> f64 {
    all.iter()
        .flat_map(|(_, rows)| rows)
        .filter(|c| c.name() == name)
        .map(|c| c.start + c.duration)
        .fold(0.0, f64::max)
}

#[test]
fn every_missing_input_is_reported_together_before_any_window_is_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, runs) = (dir.path().join("sim"), dir.path().join("runs"));
    ok(&[
        "simulate",
        "--kind",
        "music",
        "--out",
        s(&sim),
        "--seed",
        "0",
    ]);
    ok(&[
        "bids",
        "prepare",
        "--bids-root",
        s(&sim),
        "--subject",
        "001",
        "--task",
        "Training",
        "--task",
        "Test",
        "--mask",
        s(&sim.join("derivatives/mask/sub-001_mask.nii.gz")),
        "--out",
        s(&runs),
    ]);
    let atlas = sim.join("derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz");
    let all = clips(&runs);
    // Rows 2–5 of a training run's events: kept (only each run's first clip is dropped), and
    // four tracks heard once each.
    let (events, first) = all
        .iter()
        .find(|(name, _)| name.contains("Training"))
        .unwrap();
    let (gone_a, gone_b, short, nearly) = (&first[1], &first[2], &first[3], &first[4]);
    let names = [gone_a.name(), gone_b.name(), short.name(), nearly.name()];
    assert!(
        (0..4).all(|i| (i + 1..4).all(|j| names[i] != names[j])),
        "{names:?}"
    );

    // (a) a missing atlas, (b) two missing tracks, a track 5 s short of its clip's end and
    // (c) a wrong model path, all at once.
    let bad_stimuli = dir.path().join("bad-stimuli");
    copy_dir(&sim.join("stimuli/genres"), &bad_stimuli);
    std::fs::remove_file(gone_a.file(&bad_stimuli)).unwrap();
    std::fs::remove_file(gone_b.file(&bad_stimuli)).unwrap();
    shorten(
        &short.file(&bad_stimuli),
        last_end(&all, &short.name()) - 5.0,
    );
    let missing_atlas = dir.path().join("no-such-atlas.nii.gz");
    let wrong_model = dir.path().join("no-such-clap");
    let out = dir.path().join("fit-refused");
    let (refused, refused_took) = brainrecon(&[
        "music",
        "fit",
        "--runs",
        s(&runs),
        "--stimuli",
        s(&bad_stimuli),
        "--atlas",
        s(&missing_atlas),
        "--model",
        s(&wrong_model),
        "--out",
        s(&out),
    ]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    for needle in [
        s(&missing_atlas),
        s(&wrong_model),
        &format!("{}.wav", gone_a.name()),
        &format!("{}.wav", gone_b.name()),
        &format!("{events} row 2"),
        &format!("{events} row 3"),
        &format!("{}.wav", short.name()),
        &format!("{events} row 4"),
        "5.000 s past the end",
        "5 problems with the inputs",
    ] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    // One line per problem.
    assert_eq!(err.lines().count(), 6, "{err}");
    assert!(
        !out.exists(),
        "nothing may be written before the inputs are checked"
    );

    // Only the atlas missing, everything else good: still refused before the windows are
    // embedded, so in a small fraction of the time a whole fit takes.
    let (atlas_only, atlas_only_took) = brainrecon(&[
        "music",
        "fit",
        "--runs",
        s(&runs),
        "--stimuli",
        s(&sim.join("stimuli/genres")),
        "--atlas",
        s(&missing_atlas),
        "--out",
        s(&out),
    ]);
    let err = String::from_utf8_lossy(&atlas_only.stderr);
    assert_eq!(atlas_only.status.code(), Some(2), "{err}");
    assert!(
        err.contains("1 problem with the inputs") && err.contains(s(&missing_atlas)),
        "{err}"
    );
    assert!(!out.exists());

    // Good inputs, one track 0.05 s short of its clip's end (within the 0.1-s tolerance): the
    // fit runs, and the refusals took a small fraction of its time.
    let good_stimuli = dir.path().join("good-stimuli");
    copy_dir(&sim.join("stimuli/genres"), &good_stimuli);
    shorten(
        &nearly.file(&good_stimuli),
        last_end(&all, &nearly.name()) - 0.05,
    );
    let fitted = dir.path().join("fit");
    let fit_took = ok(&[
        "music",
        "fit",
        "--runs",
        s(&runs),
        "--stimuli",
        s(&good_stimuli),
        "--atlas",
        s(&atlas),
        "--out",
        s(&fitted),
    ]);
    assert!(fitted.join("music_fit.json").is_file());
    for took in [refused_took, atlas_only_took] {
        assert!(
            took * 5 < fit_took,
            "refused in {took:?}, a whole fit took {fit_took:?}"
        );
    }

    retrieve_warns(dir.path(), &sim, &fitted);
    bad_input(dir.path(), &runs, &sim, &fitted);
    generate_on_the_command_line(dir.path(), &sim, &fitted);
}

/// `music retrieve --json` on a library with a file that does not decode and one whose header
/// claims 4.29 GHz: both skipped with a warning naming them, the rest retrieved.
fn retrieve_warns(dir: &Path, sim: &Path, fit: &Path) {
    let library = sim.join("library");
    let small = dir.join("small-library");
    brainrecon_testkit::library_with_bad_wavs(&library, &small);
    let page = dir.join("p2");
    let args = [
        "music",
        "retrieve",
        "--fit",
        s(fit),
        "--library",
        s(&small),
        "--out",
        s(&page),
        "--top-k",
        "1",
        "--json",
    ];
    let (out, _) = brainrecon(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
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
}

/// `music retrieve` and `music fit` refuse bad input with exit status 2 and a message naming it.
fn bad_input(dir: &Path, runs: &Path, sim: &Path, fit: &Path) {
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
            s(fit),
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
            s(runs),
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
            s(runs),
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
            s(runs),
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
    copy_dir(runs, &moved);
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
    let help = |args: &[&str]| -> String {
        let (out, _) = brainrecon(args);
        assert!(out.status.success(), "brainrecon {}", args.join(" "));
        String::from_utf8(out.stdout).unwrap()
    };
    for group in ["fit", "retrieve", "demo"] {
        assert!(
            help(&["music", group, "--help"]).contains("Example:"),
            "music {group}"
        );
    }
    assert!(help(&["--help"]).contains("Music from brain activity"));
    assert!(help(&["music", "--help"]).contains("generate"));
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

/// `music generate --json` prints generation.json's summary; its bad input is refused with exit
/// status 2 and nothing written.
fn generate_on_the_command_line(dir: &Path, sim: &Path, fit: &Path) {
    let captions = sim.join("stimuli/captions.tsv");
    let musicgen = dir.join("musicgen");
    musicgen_folder(&musicgen, true);
    let out = dir.join("gen");
    let (printed, _) = brainrecon(&[
        "music",
        "generate",
        "--fit",
        s(fit),
        "--captions",
        s(&captions),
        "--musicgen",
        s(&musicgen),
        "--out",
        s(&out),
        "--seconds",
        "0.03",
        "--seed",
        "7",
        "--json",
    ]);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let summary: Value = serde_json::from_slice(&printed.stdout).unwrap();
    assert_eq!(summary, json(&out.join("generation.json")));

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
    let bank: BTreeMap<String, String> = std::fs::read_to_string(&captions)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split('\t').collect();
            (cells[0].to_string(), cells[2].to_string())
        })
        .collect();

    // Bad input: exit 2 and a message naming what is wrong.
    let base = |out: &Path| {
        vec![
            "music".to_string(),
            "generate".into(),
            "--fit".into(),
            s(fit).into(),
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
