//! Crash safety, as storage tools test it (SQLite's crash tests, Postgres's recovery tests):
//! every command that writes is killed with SIGKILL at random instants of its run, then run
//! again unbroken. The rerun must end in the same bytes as an unbroken run (timings aside), or
//! refuse with exit 2 and a message naming the output; a half-written file is never used.
//!
//! Kills per command from `BRAINRECON_CRASH_KILLS` (default 50 a command in CI), seed from
//! `BRAINRECON_CRASH_SEED` (default 0); `tools/crash.sh` runs the long campaign. The trainers of
//! the zoo run at `--preset tiny`: the same pipeline (data, checkpoints, resume, outputs) in
//! about a second. Each command prints its outcomes. A full disk (a 64 KiB tmpfs) and a
//! read-only output folder (a read-only tmpfs) are refused with exit 2 naming the file, and
//! leave nothing half-written.

mod common;

use common::p;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn kills() -> usize {
    env_number("BRAINRECON_CRASH_KILLS", 50) as usize
}

/// Seconds one command's kills may take (`BRAINRECON_CRASH_BUDGET_SECONDS`; none by default):
/// the long campaign stops a slow command's kills there and reports how many it made.
fn budget() -> Option<std::time::Duration> {
    std::env::var("BRAINRECON_CRASH_BUDGET_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_secs)
}

/// The project's own seeded generator for the kill instants (xorshift64*).
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The inputs every command reads, made once per test process.
fn inputs() -> &'static Path {
    static INPUTS: OnceLock<PathBuf> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("crash-inputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("arrays")).unwrap();
        for (from, to) in [
            ("models/shapes-ldm", "shapes-ldm"),
            ("models/genres-clap", "genres-clap"),
            (
                "crates/cli/tests/fixtures/ds005531_shipped/derivatives/annotation",
                "corpus",
            ),
        ] {
            common::copy_dir(&repo().join(from), &dir.join(to));
        }
        for line in SETUP {
            common::set_up(&dir, line);
        }
        dir
    })
}

/// The commands that make the inputs (`copy FROM TO` copies a file).
const SETUP: &[&str] = &[
    "simulate --out {d}/nsd --images 40 --seed 1 --image-size 16",
    "nsd prepare --nsd-root {d}/nsd --subject subj01 --out {d}/subj01-bare",
    "nsd prepare --nsd-root {d}/nsd --subject subj01 --out {d}/subj01",
    "features --subject {d}/subj01 --model {d}/shapes-ldm --kind vae",
    "features --subject {d}/subj01 --model {d}/shapes-ldm --kind clip-text",
    "fit --subject {d}/subj01 --target z --out {d}/decoders/z",
    "fit --subject {d}/subj01 --target c --out {d}/decoders/c",
    "copy subj01/betas/prf-visualrois/train.npy arrays/X.npy",
    "copy subj01/betas/nsdgeneral/train.npy arrays/Y.npy",
    "simulate --kind movie --out {d}/movie --seed 1 --runs 2 --run-seconds 60",
    "simulate --kind events --out {d}/events --seed 1 --images 18 --runs 3 \
     --volume 16,18,12 --image-size 16",
    "glm --fmriprep {d}/events/derivatives/fmriprep --bids-root {d}/events --subject 01 \
     --task images --space T1w --out {d}/events-glm",
    "simulate --kind video --out {d}/video --seed 1",
    "video prepare --cc2017 {d}/video --subject 1 --out {d}/video-sub1",
    "simulate --kind music --out {d}/music --seed 1 --clips-per-genre 2 --clips-per-run 4 \
     --library-per-genre 1",
    "bids prepare --bids-root {d}/music --subject 001 --task Training --task Test \
     --mask {d}/music/derivatives/mask/sub-001_mask.nii.gz --out {d}/music-runs",
];

/// Every file under `dir` (relative path → bytes), JSON files with their timings taken out.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let bytes = std::fs::read(&path).unwrap();
            let bytes = if rel.ends_with(".json") {
                without_timings(&bytes)
            } else {
                bytes
            };
            out.insert(rel, bytes);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Whether a JSON key names a timing (see [`without_timings`]).
fn timing_key(key: &str) -> bool {
    const WORDS: [&str; 14] = [
        "second",
        "seconds",
        "secs",
        "s",
        "ms",
        "elapsed",
        "time",
        "date",
        "timestamp",
        "started",
        "finished",
        "created",
        "wall",
        "duration",
    ];
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in key.chars() {
        if c == '_' || c == '-' || c == ' ' || (c.is_uppercase() && previous_lower) {
            words.push(std::mem::take(&mut word));
        }
        previous_lower = c.is_lowercase();
        if c.is_alphanumeric() {
            word.push(c.to_ascii_lowercase());
        }
    }
    words.push(word);
    words.iter().any(|w| WORDS.contains(&w.as_str()))
}

/// A JSON file's bytes with the values of timing keys (seconds, milliseconds, dates) replaced:
/// they differ between any two runs. A key is a timing key when one of its words (split at `_`,
/// `-`, spaces and lower-to-upper case changes) is a unit or a word of time, so `n_times`,
/// `candidates` and `update` are still compared.
fn without_timings(bytes: &[u8]) -> Vec<u8> {
    fn scrub(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    if timing_key(key) {
                        *value = serde_json::Value::Null;
                    } else {
                        scrub(value);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(scrub),
            _ => {}
        }
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(mut v) => {
            scrub(&mut v);
            serde_json::to_vec(&v).unwrap()
        }
        Err(_) => bytes.to_vec(),
    }
}

/// Removes `out` and what a run may leave beside it (staging and lock files).
fn clear(out: &Path) {
    let parent = out.parent().unwrap();
    let name = out.file_name().unwrap().to_string_lossy().into_owned();
    for entry in std::fs::read_dir(parent).unwrap().flatten() {
        let other = entry.file_name().to_string_lossy().into_owned();
        if other == name
            || other.starts_with(&format!("{name}."))
            || other.starts_with(&format!(".{name}"))
        {
            let path = entry.path();
            let _ = std::fs::remove_dir_all(&path);
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn command(args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_brainrecon"));
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// One writing command: its line (`{d}` the inputs, `{out}` its output) and what it writes.
struct Target {
    name: &'static str,
    line: &'static str,
    /// A folder of the inputs copied to `{out}` before every run, for commands that write into
    /// a folder they are given (`features` into a subject); the whole of `{out}` is compared.
    fresh: Option<&'static str>,
}

const fn target(name: &'static str, line: &'static str) -> Target {
    Target {
        name,
        line,
        fresh: None,
    }
}

const TARGETS: &[Target] = &[
    target(
        "nsd prepare",
        "nsd prepare --nsd-root {d}/nsd --subject subj01 --out {out}",
    ),
    target(
        "bids prepare",
        "bids prepare --bids-root {d}/movie --subject 01 --task movie \
         --mask {d}/movie/derivatives/mask/sub-01_mask.nii.gz --out {out}",
    ),
    target(
        "glm",
        "glm --fmriprep {d}/events/derivatives/fmriprep --bids-root {d}/events \
         --subject 01 --task images --space T1w --out {out}",
    ),
    target(
        "glm prepare",
        "glm prepare --glm {d}/events-glm --captions {d}/events/stimuli/captions.json \
         --out {out}",
    ),
    Target {
        name: "features",
        line: "features --subject {out} --model {d}/shapes-ldm --kind vae",
        fresh: Some("subj01-bare"),
    },
    target(
        "ridge fit",
        "ridge fit --x {d}/arrays/X.npy --y {d}/arrays/Y.npy --alphas 1,100 --out {out}",
    ),
    target(
        "fit",
        "fit --subject {d}/subj01 --target pixels:16 --out {out}",
    ),
    target(
        "slurm submit",
        "slurm submit --shards 2 --dry-run --jobs {out} -- ridge fit --x {d}/arrays/X.npy \
         --y {d}/arrays/Y.npy --out {d}/sharded",
    ),
    target(
        "reconstruct",
        "reconstruct --subject {d}/subj01 --decoders {d}/decoders --model {d}/shapes-ldm \
         --method linear --samples 1 --steps 2 --limit 3 --out {out}",
    ),
    target(
        "b2c train",
        "b2c train --subject {d}/subj01 --model {d}/shapes-ldm --steps 2 --batch 2 --layers 1 \
         --checkpoint-every 1 --out {out}",
    ),
    target(
        "train-word2vec",
        "train-word2vec --corpus {d}/corpus --min-count 1 --dim 8 --epochs 2 --out {out}",
    ),
    target(
        "train-clap",
        "train-clap --preset tiny --steps 3 --checkpoint-every 1 --out {out}",
    ),
    target(
        "train-captioner",
        "train-captioner --preset tiny --out {out}",
    ),
    target("train-prior", "train-prior --preset tiny --out {out}"),
    target(
        "video train-motion",
        "video train-motion --steps 1 --batch 1 --frames 2 --out {out}",
    ),
    target(
        "video fit",
        "video fit --prepared {d}/video-sub1 --stimuli {d}/video/stimuli \
         --captions {d}/video/stimuli/captions.tsv --model {d}/shapes-ldm --out {out}",
    ),
    target(
        "music fit",
        "music fit --runs {d}/music-runs --stimuli {d}/music/stimuli \
         --atlas {d}/music/derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz \
         --model {d}/genres-clap --out {out}",
    ),
];

/// What the kills of one command came to.
#[derive(Default, Debug)]
struct Outcomes {
    same_bytes: usize,
    refused: usize,
    /// Kills after which `--out` did not exist yet (killed before its commit).
    out_absent_after_kill: usize,
}

fn campaign(target: &Target) -> Outcomes {
    let dir = inputs();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let args = common::words(target.line, &[("{d}", dir), ("{out}", &out)]);
    // `{out}` as a run finds it: absent, or a fresh copy of the folder it writes into.
    let start_afresh = || {
        clear(&out);
        if let Some(folder) = target.fresh {
            common::copy_dir(&dir.join(folder), &out);
        }
    };
    // The unbroken run: its bytes and its length.
    start_afresh();
    let started = Instant::now();
    let reference = command(&args).output().unwrap();
    let length = started.elapsed();
    assert!(
        reference.status.success(),
        "{}: {}",
        target.name,
        String::from_utf8_lossy(&reference.stderr)
    );
    let expected = snapshot(&out);
    assert!(!expected.is_empty(), "{}: wrote nothing", target.name);
    let seed = env_number("BRAINRECON_CRASH_SEED", 0);
    let name_hash = target.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = Rng(name_hash ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut outcomes = Outcomes::default();
    let campaign_started = Instant::now();
    let mut made = 0;
    for kill in 0..kills() {
        if budget().is_some_and(|b| campaign_started.elapsed() > b) {
            break;
        }
        made += 1;
        start_afresh();
        let at = length.mul_f64(rng.unit() * 1.05);
        let mut child = command(&args).spawn().unwrap();
        std::thread::sleep(at);
        let _ = child.kill();
        let _ = child.wait();
        let before = out.exists();
        let rerun = command(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&rerun.stderr).into_owned();
        match rerun.status.code() {
            Some(0) => {
                let got = snapshot(&out);
                let differing: Vec<&String> = expected
                    .keys()
                    .chain(got.keys())
                    .filter(|k| expected.get(*k) != got.get(*k))
                    .collect();
                assert!(
                    differing.is_empty(),
                    "{}: killed at {at:?} (kill {kill}), the rerun differs from an unbroken run in {differing:?}",
                    target.name
                );
                outcomes.same_bytes += 1;
                if !before {
                    outcomes.out_absent_after_kill += 1;
                }
            }
            Some(2) => {
                assert!(
                    stderr.contains(p(&out)),
                    "{}: killed at {at:?}, the rerun refused without naming the output: {stderr}",
                    target.name
                );
                outcomes.refused += 1;
            }
            other => panic!(
                "{}: killed at {at:?}, the rerun ended with {other:?}: {stderr}",
                target.name
            ),
        }
    }
    println!(
        "{}: {made} kills of a {length:?} run: {outcomes:?}",
        target.name
    );
    outcomes
}

macro_rules! crash_targets {
    ($($(#[$attribute:meta])* $test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            $(#[$attribute])*
            fn $test() {
                let target = TARGETS.iter().find(|t| t.name == $name).unwrap();
                campaign(target);
            }
        )*
    };
}

crash_targets! {
    nsd_prepare => "nsd prepare",
    bids_prepare => "bids prepare",
    glm => "glm",
    glm_prepare => "glm prepare",
    features => "features",
    ridge_fit => "ridge fit",
    fit => "fit",
    reconstruct => "reconstruct",
    slurm_submit => "slurm submit",
    b2c_train => "b2c train",
    train_word2vec => "train-word2vec",
    video_train_motion => "video train-motion",
    video_fit => "video fit",
    music_fit => "music fit",
    train_captioner => "train-captioner",
    train_clap => "train-clap",
    train_prior => "train-prior",
}

/// Mounts a tmpfs of `size` at `dir` (`ro` for a read-only one); false where mounting is not
/// allowed (not root, or no CAP_SYS_ADMIN).
fn mount_tmpfs(dir: &Path, size: &str, read_only: bool) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    let options = format!("size={size}{}", if read_only { ",ro" } else { "" });
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &options, "tmpfs", p(dir)])
        .status()
        .is_ok_and(|s| s.success())
}

fn unmount(dir: &Path) {
    let _ = Command::new("umount").arg(dir).status();
}

#[test]
fn a_full_disk_and_a_read_only_folder_are_refused_with_nothing_half_written() {
    let dir = inputs();
    let work = tempfile::tempdir().unwrap();
    let (full, read_only) = (work.path().join("full"), work.path().join("read-only"));
    if !mount_tmpfs(&full, "64k", false) {
        brainrecon_testkit::cannot_run(
            "the full-disk and read-only output cases",
            "mounting a tmpfs needs root or CAP_SYS_ADMIN",
        );
        return;
    }
    assert!(mount_tmpfs(&read_only, "64k", true));
    for (mount, why) in [(&full, "No space left"), (&read_only, "Read-only")] {
        for line in [
            "ridge fit --x {d}/arrays/X.npy --y {d}/arrays/Y.npy --alphas 1,100 --out {out}",
            "nsd prepare --nsd-root {d}/nsd --subject subj01 --out {out}",
        ] {
            let out = mount.join("out");
            let args = common::words(line, &[("{d}", dir), ("{out}", &out)]);
            let run = command(&args).output().unwrap();
            let stderr = String::from_utf8_lossy(&run.stderr);
            assert_eq!(run.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains(p(mount)) && stderr.contains(why),
                "{args:?}: {stderr}"
            );
            // Nothing half-written: no file left but complete ones of a finished output.
            let left: Vec<String> = std::fs::read_dir(mount)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(left.is_empty(), "{args:?} left {left:?}");
        }
    }
    unmount(&full);
    unmount(&read_only);
}

#[test]
fn only_timing_keys_are_left_uncompared() {
    for key in [
        "seconds",
        "elapsed_seconds",
        "fit_time",
        "wall_s",
        "latency_ms",
        "started",
        "date",
        "trainSeconds",
    ] {
        assert!(timing_key(key), "{key}");
    }
    for key in [
        "n_times",
        "candidates",
        "update",
        "validation",
        "sessions",
        "n_samples",
    ] {
        assert!(!timing_key(key), "{key}");
    }
}
