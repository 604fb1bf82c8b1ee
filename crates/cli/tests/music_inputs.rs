//! `music fit` checks every external input before it embeds a window: a run set pointed at a
//! missing atlas, two missing tracks, a track too short for its clip and a wrong model path is
//! refused at once (exit 2) with every one of them named, in a small fraction of the time a fit
//! takes, and nothing written; a track a few hundredths of a second short of its clip's end is
//! accepted (its tail padded with silence) and the fit runs.

use brainrecon_formats::audio::read_audio;
use brainrecon_formats::audio::wav::write_pcm16;
use brainrecon_testkit::copy_dir;
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
}
