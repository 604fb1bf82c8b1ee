//! The commands that read files, run as a user runs them on mutated copies of valid inputs
//! (bit flips, truncation, zeroed and 0xFF runs, huge sizes, NaN/Inf, hostile numbers in JSON
//! and TSV). Each run must exit 0, or exit 2 naming a file; never panic (101), abort (a
//! signal: an allocation sized by the file fails under the test's 8 GiB address-space limit),
//! hang (over the time limit), or leave output behind when it fails.
//!
//! Cases per command from `BRAINRECON_FUZZ_COMMAND_CASES` (default 12), seed from
//! `BRAINRECON_FUZZ_SEED` (default 0); `tools/fuzz.sh` runs the long version. A failing case
//! keeps its mutated file in `<target>/tmp/fuzz-crashers/`, printed with the command.

mod common;

#[path = "../../datasets/tests/mutate/mod.rs"]
mod mutate;

use common::{p, words};
use mutate::{env_number, mutate, mutate_number, seed, Rng};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Address space a run may take: far above any valid case here, far below what a size read
/// from a hostile header asks for.
const ADDRESS_SPACE: u64 = 8 << 30;

fn cases() -> usize {
    env_number("BRAINRECON_FUZZ_COMMAND_CASES", 12) as usize
}

/// Debug builds are slower: a generous limit; a hang is a run that never ends.
fn time_limit() -> Duration {
    Duration::from_secs(if cfg!(debug_assertions) { 60 } else { 20 })
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A command and the inputs it reads.
struct Target {
    name: &'static str,
    /// The valid inputs, relative to the shared inputs folder.
    inputs: &'static [&'static str],
    /// Which of the inputs' files are mutated: paths containing one of these.
    mutated: &'static [&'static str],
    /// The command line (words split at spaces); `{in}` is the case's inputs folder, `{out}` its
    /// output path, `{file}` the mutated file.
    command: &'static str,
}

/// `target`'s command for one case: its inputs folder, output path and mutated file.
fn command_of(target: &Target, inputs_dir: &Path, out: &Path, file: &Path) -> Vec<String> {
    words(
        target.command,
        &[("{in}", inputs_dir), ("{out}", out), ("{file}", file)],
    )
}

/// The inputs all targets share, made once per test process under the target's tmp dir (one
/// folder per process, so that two runs at once do not remove each other's; those of ended
/// processes are removed).
fn inputs() -> &'static Path {
    static INPUTS: OnceLock<PathBuf> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for entry in std::fs::read_dir(tmp).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("fuzz-commands-inputs-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = tmp.join(format!("fuzz-commands-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        make_inputs(&dir);
        dir
    })
}

/// Simulated datasets, prepared subjects, fitted models and copies of the committed fixtures.
fn make_inputs(dir: &Path) {
    for (from, to) in [
        ("models/shapes-ldm", "shapes-ldm"),
        ("models/genres-clap", "genres-clap"),
        ("models/word2vec-movie", "word2vec-movie"),
        ("crates/cli/tests/fixtures/ds005531_shipped", "ds005531"),
        ("crates/cli/tests/fixtures/nsd_timeseries", "nsd-timeseries"),
        ("crates/datasets/tests/fixtures/fmriprep", "fmriprep"),
        ("crates/stream/tests/fixtures", "signals"),
        ("crates/cli/tests/fixtures/freesurfer", "freesurfer"),
        ("crates/datasets/tests/fixtures/ds003825", "ds003825"),
    ] {
        common::copy_dir(&repo().join(from), &dir.join(to));
    }
    std::fs::create_dir_all(dir.join("arrays")).unwrap();
    for line in SETUP {
        common::set_up(dir, line);
    }
}

/// The commands that make the inputs (`copy FROM TO` copies a file).
const SETUP: &[&str] = &[
    "simulate --out {d}/nsd --images 40 --seed 1 --image-size 16",
    "nsd prepare --nsd-root {d}/nsd --subject subj01 --out {d}/subj01",
    "copy subj01/betas/prf-visualrois/train.npy arrays/X.npy",
    "copy subj01/betas/nsdgeneral/train.npy arrays/Y.npy",
    "ridge fit --x {d}/arrays/X.npy --y {d}/arrays/Y.npy --alphas 1,100 --out {d}/ridge",
    "ridge fit --x {d}/arrays/X.npy --y {d}/arrays/Y.npy --alphas 1,100 --shard 0/2 \
     --out {d}/shards/0",
    "ridge fit --x {d}/arrays/X.npy --y {d}/arrays/Y.npy --alphas 1,100 --shard 1/2 \
     --out {d}/shards/1",
    "fit --subject {d}/subj01 --target pixels:16 --out {d}/pixels",
    "decode --subject {d}/subj01 --model {d}/pixels --out {d}/recons",
    "features --subject {d}/subj01 --model {d}/shapes-ldm --kind vae",
    "features --subject {d}/subj01 --model {d}/shapes-ldm --kind clip-text",
    "fit --subject {d}/subj01 --target z --out {d}/decoders/z",
    "fit --subject {d}/subj01 --target c --out {d}/decoders/c",
    "simulate --kind events --out {d}/events --seed 1 --images 18 --runs 3 --volume 16,18,12 \
     --image-size 16",
    "glm --fmriprep {d}/events/derivatives/fmriprep --bids-root {d}/events --subject 01 \
     --task images --space T1w --out {d}/events-glm",
    "glm --nsd {d}/nsd-timeseries --subject 1 --session 1 --out {d}/nsd-glm",
    "simulate --kind movie --out {d}/movie --seed 1 --runs 2 --run-seconds 60",
    "bids prepare --bids-root {d}/movie --subject 01 --task movie \
     --mask {d}/movie/derivatives/mask/sub-01_mask.nii.gz --out {d}/movie-runs",
    "simulate --kind video --out {d}/video --seed 1",
    "video prepare --cc2017 {d}/video --subject 1 --out {d}/video-sub1",
    "simulate --kind music --out {d}/music --seed 1 --clips-per-genre 2 --clips-per-run 4 \
     --library-per-genre 1",
    "bids prepare --bids-root {d}/music --subject 001 --task Training --task Test \
     --mask {d}/music/derivatives/mask/sub-001_mask.nii.gz --out {d}/music-runs",
    "music fit --runs {d}/music-runs --stimuli {d}/music/stimuli \
     --atlas {d}/music/derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz \
     --model {d}/genres-clap --out {d}/music-fit",
    "simulate --subjects 3 --images 40 --shared-images 12 --sessions 2 --seed 1 --image-size 16 \
     --volume 14,18,12 --out {d}/group-nsd",
    "nsd prepare --nsd-root {d}/group-nsd --subject subj01 --out {d}/g01",
    "nsd prepare --nsd-root {d}/group-nsd --subject subj02 --out {d}/g02",
    "nsd prepare --nsd-root {d}/group-nsd --subject subj03 --out {d}/g03",
    "features --subject {d}/g01 --model {d}/shapes-ldm --kind vae",
    "features --subject {d}/g01 --model {d}/shapes-ldm --kind clip-text",
    "features --subject {d}/g02 --model {d}/shapes-ldm --kind vae",
    "features --subject {d}/g02 --model {d}/shapes-ldm --kind clip-text",
    "features --subject {d}/g03 --model {d}/shapes-ldm --kind vae",
    "features --subject {d}/g03 --model {d}/shapes-ldm --kind clip-text",
    "group prepare --subject {d}/g02 --subject {d}/g03 --out {d}/group",
    "group fit --group {d}/group --method shared --k 4 --cv gcv",
    "group fit --group {d}/group --method srm --k 4 --cv gcv",
    "simulate --kind eeg --subjects 2 --out {d}/eeg",
    "eeg embed --data {d}/eeg --out {d}/eeg-emb",
    "eeg fit --data {d}/eeg --embeddings {d}/eeg-emb --subject sub-01 --method ridge \
     --window 20:80 --out {d}/eeg-ridge",
];

const TARGETS: &[Target] = &[
    Target {
        name: "nsd-prepare",
        inputs: &["nsd"],
        mutated: &[
            "nsddata/experiments",
            "nsddata/ppdata",
            "nsddata_betas",
            "nsddata_stimuli",
        ],
        command: "nsd prepare --nsd-root {in}/nsd --subject subj01 --out {out}",
    },
    Target {
        name: "info",
        inputs: &["subj01"],
        mutated: &[
            "subj01/subject.json",
            "subj01/rois",
            "subj01/test_stimulus_ids",
            "subj01/betas/nsdgeneral/test",
        ],
        command: "info {in}/subj01 --json",
    },
    Target {
        name: "fit-pixels",
        inputs: &["subj01"],
        mutated: &[
            "subj01/subject.json",
            "subj01/stimuli",
            "subj01/train_",
            "subj01/trials.tsv",
            "subj01/betas/nsdgeneral/train",
        ],
        command: "fit --subject {in}/subj01 --target pixels:16 --out {out}",
    },
    Target {
        name: "decode",
        inputs: &["subj01", "pixels"],
        mutated: &[
            "pixels/",
            "subj01/betas",
            "subj01/stimuli",
            "subj01/subject.json",
        ],
        command: "decode --subject {in}/subj01 --model {in}/pixels --out {out}",
    },
    Target {
        name: "eval",
        inputs: &["subj01", "recons"],
        mutated: &["recons/", "subj01/stimuli", "subj01/test_stimulus_ids"],
        command: "eval --stimuli {in}/subj01 --recons {in}/recons --json",
    },
    Target {
        name: "ridge-fit",
        inputs: &["arrays"],
        mutated: &["arrays/"],
        command: "ridge fit --x {in}/arrays/X.npy --y {in}/arrays/Y.npy --alphas 1,100 --out {out}",
    },
    Target {
        name: "ridge-predict",
        inputs: &["arrays", "ridge"],
        mutated: &["ridge/", "arrays/X.npy"],
        command: "ridge predict --model {in}/ridge --x {in}/arrays/X.npy --out {out}.npy",
    },
    Target {
        name: "ridge-merge",
        inputs: &["shards"],
        mutated: &["shards/"],
        command: "ridge merge --models {in}/shards/0 {in}/shards/1 --out {out}",
    },
    Target {
        name: "train-word2vec-corpus",
        inputs: &["ds005531"],
        mutated: &["ds005531/derivatives/annotation"],
        command: "train-word2vec --corpus {in}/ds005531/derivatives/annotation --min-count 1 \
                  --dim 8 --epochs 1 --out {out}",
    },
    Target {
        name: "generate",
        inputs: &["shapes-ldm"],
        mutated: &["config.json", "safetensors", "tokenizer/"],
        command: "generate --model {in}/shapes-ldm --prompt circle --steps 1 --out {out}.png",
    },
    Target {
        name: "bids-prepare",
        inputs: &["movie"],
        mutated: &["movie/sub-01", "movie/derivatives/mask"],
        command: "bids prepare --bids-root {in}/movie --subject 01 --task movie --out {out}",
    },
    Target {
        name: "bids-prepare-ds005531",
        inputs: &["ds005531"],
        mutated: &["ds005531/"],
        command: "bids prepare --layout ds005531 --bids-root {in}/ds005531 --subject S01 --task \
                  breakingbad --out {out}",
    },
    Target {
        name: "bids-prepare-fmriprep",
        inputs: &["fmriprep"],
        mutated: &["fmriprep/bids", "fmriprep/derivatives"],
        command:
            "bids prepare --fmriprep {in}/fmriprep/derivatives --bids-root {in}/fmriprep/bids \
                  --subject 01 --task movie --confounds motion:basic,high_pass,scrub --out {out}",
    },
    Target {
        name: "glm",
        inputs: &["events"],
        mutated: &["events/sub-01", "events/derivatives"],
        command: "glm --fmriprep {in}/events/derivatives/fmriprep --bids-root {in}/events \
                  --subject 01 --task images --space T1w --confounds motion:basic --out {out}",
    },
    Target {
        name: "glm-nsd",
        inputs: &["nsd-timeseries"],
        mutated: &[
            "nsd-timeseries/nsddata_timeseries",
            "nsd-timeseries/nsddata/",
        ],
        command: "glm --nsd {in}/nsd-timeseries --subject 1 --session 1 --out {out}",
    },
    Target {
        name: "glm-compare-nsd",
        inputs: &["nsd-glm", "nsd-timeseries"],
        mutated: &["nsd-glm/", "nsd-timeseries/nsddata_betas"],
        command: "glm compare --glm {in}/nsd-glm --nsd {in}/nsd-timeseries --out {out}",
    },
    Target {
        name: "glm-prepare",
        inputs: &["events-glm", "events"],
        mutated: &[
            "events-glm/",
            "events/stimuli",
            "events/derivatives/fmriprep/sub-01/anat",
        ],
        command: "glm prepare --glm {in}/events-glm --stimuli {in}/events/stimuli --atlas \
                  {in}/events/derivatives/fmriprep/sub-01/anat/sub-01_desc-aparcaseg_dseg.nii.gz \
                  --captions {in}/events/stimuli/captions.json --out {out}",
    },
    Target {
        name: "features-text",
        inputs: &["word2vec-movie", "movie"],
        mutated: &["word2vec-movie/", "movie/derivatives/annotation"],
        command: "features text --model {in}/word2vec-movie/vectors.bin --annotations \
                  {in}/movie/derivatives/annotation --out {out}",
    },
    Target {
        name: "video-prepare",
        inputs: &["video"],
        mutated: &["video/subject1", "video/design", "/frames.json"],
        command: "video prepare --cc2017 {in}/video --subject 1 --out {out}",
    },
    Target {
        name: "stream-edf",
        inputs: &["signals", "shapes-ldm"],
        mutated: &[
            "signals/edf_mixed.edf",
            "signals/bdf3.bdf",
            "signals/edfplus_annot.edf",
        ],
        command: "stream --source {file} --model {in}/shapes-ldm --steps 1 --fast --frames 2 \
                  --no-serve --out {out}",
    },
    Target {
        name: "encode-runs",
        inputs: &["movie-runs", "movie"],
        mutated: &["movie-runs/", "movie/derivatives/annotation"],
        command: "encode-runs --subject {in}/movie-runs --bands speech,objects --alphas 1,100 \
                  --folds 3 --out {out}",
    },
    Target {
        name: "video-fit",
        inputs: &["video-sub1", "video"],
        mutated: &[
            "video-sub1/",
            "/frames.json",
            "video/stimuli/captions.tsv",
            "video/stimuli/test",
        ],
        command: "video fit --prepared {in}/video-sub1 --stimuli {in}/video/stimuli --captions \
                  {in}/video/stimuli/captions.tsv --out {out}",
    },
    Target {
        name: "music-fit",
        inputs: &["music-runs", "music", "genres-clap"],
        mutated: &[
            "music-runs/",
            "music/stimuli",
            "music/derivatives/atlas",
            "genres-clap/",
        ],
        command: "music fit --runs {in}/music-runs --stimuli {in}/music/stimuli --atlas \
                  {in}/music/derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz --model \
                  {in}/genres-clap --out {out}",
    },
    Target {
        name: "music-retrieve",
        inputs: &["music-fit", "music", "genres-clap"],
        mutated: &["music-fit/", "music/library"],
        command: "music retrieve --fit {in}/music-fit --library {in}/music/library --out {out}",
    },
    Target {
        name: "stream-arrays",
        inputs: &["signals", "shapes-ldm"],
        mutated: &[
            "signals/raw_f32.npy",
            "signals/window.npy",
            "signals/table.csv",
        ],
        command: "stream --source {file} --rate 250 --model {in}/shapes-ldm --steps 1 --fast \
                  --frames 2 --no-serve --out {out}",
    },
    Target {
        name: "fit-latents",
        inputs: &["subj01"],
        mutated: &["subj01/features", "subj01/betas/nsdgeneral"],
        command: "fit --subject {in}/subj01 --target z --out {out}",
    },
    Target {
        name: "reconstruct-linear",
        inputs: &["subj01", "decoders", "shapes-ldm"],
        mutated: &[
            "decoders/",
            "subj01/betas/nsdgeneral/test",
            "subj01/test_stimulus_ids",
        ],
        command: "reconstruct --method linear --subject {in}/subj01 --decoders {in}/decoders \
                  --model {in}/shapes-ldm --steps 2 --out {out}",
    },
    Target {
        name: "group-prepare",
        inputs: &["g02", "g03"],
        mutated: &[
            "g02/subject.json",
            "g03/features/vae.json",
            "g03/test_stimulus_ids",
            "g02/stimuli/ids",
            "g03/rois/nsdgeneral",
        ],
        command: "group prepare --subject {in}/g02 --subject {in}/g03 --out {out}",
    },
    Target {
        name: "group-adapt",
        inputs: &["group", "g01"],
        mutated: &[
            "group/group.json",
            "group/spaces/shared/space.json",
            "group/spaces/shared/basis",
            "group/spaces/shared/target_mean",
            "group/spaces/shared/template",
            "g01/trials.tsv",
            "g01/train_stimulus_ids",
            "g01/features/clip-text",
        ],
        command: "group adapt --group {in}/group --space shared --subject {in}/g01 --out {out}",
    },
    Target {
        name: "group-adapt-srm",
        inputs: &["group", "g01"],
        mutated: &[
            "group/spaces/srm/space.json",
            "group/spaces/srm/template",
            "group/spaces/srm/encoder",
            "g01/test_stimulus_ids",
            "g01/betas/nsdgeneral/test",
        ],
        command: "group adapt --group {in}/group --space srm --subject {in}/g01 --via both \
                  --out {out}",
    },
    Target {
        name: "cortex-draw",
        inputs: &["movie"],
        mutated: &["movie/derivatives/mask"],
        command: "cortex draw --volume {in}/movie/derivatives/mask/sub-01_mask.nii.gz \
                  --cortex fsaverage5 --out {out}",
    },
    Target {
        name: "cortex-draw-freesurfer",
        inputs: &["freesurfer"],
        mutated: &[
            "freesurfer/volume.nii.gz",
            "freesurfer/subj/surf/lh.white",
            "freesurfer/subj/surf/rh.pial",
            "freesurfer/subj/surf/lh.full.flat.patch.3d",
            "freesurfer/subj/surf/rh.curv",
            "freesurfer/subj/label/lh.streams.mgz",
            "freesurfer/subj/label/streams.mgz.ctab",
        ],
        command:
            "cortex draw --volume {in}/freesurfer/volume.nii.gz --cortex {in}/freesurfer/subj \
                  --out {out}",
    },
    Target {
        name: "eeg-bids-prepare",
        inputs: &["ds003825"],
        mutated: &[
            "sub-02_task-rsvp_eeg.vhdr",
            "sub-02_task-rsvp_eeg.vmrk",
            "sub-02_task-rsvp_eeg.eeg",
            "sub-02_task-rsvp_events.tsv",
        ],
        command: "eeg bids-prepare --bids-root {in}/ds003825/ds003825 --subject 02 --task rsvp \
                  --images {in}/ds003825/THINGS --out {out}",
    },
    Target {
        name: "eeg-fit",
        inputs: &["eeg", "eeg-emb"],
        mutated: &[
            "sub-01/preprocessed_eeg_training.npy",
            "image_metadata.npy",
            "eeg-emb/",
        ],
        command: "eeg fit --data {in}/eeg --embeddings {in}/eeg-emb --subject sub-01 \
                  --method ridge --window 20:80 --out {out}",
    },
    Target {
        name: "eeg-eval",
        inputs: &["eeg", "eeg-ridge"],
        mutated: &["sub-01/preprocessed_eeg_test.npy", "eeg-ridge/"],
        command: "eeg eval --data {in}/eeg --decoder {in}/eeg-ridge --ways 2,4 --draws 5 \
                  --out {out}",
    },
];

/// The files under the target's inputs whose relative path contains each of its `mutated`
/// parts: one group per part, so a part with few files is mutated as often as one with many.
fn mutated_files(target: &Target) -> Vec<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut all = Vec::new();
    for input in target.inputs {
        walk(&inputs().join(input), &mut all);
    }
    let all: Vec<PathBuf> = all
        .into_iter()
        .map(|path| path.strip_prefix(inputs()).unwrap().to_path_buf())
        .collect();
    target
        .mutated
        .iter()
        .map(|part| {
            let group: Vec<PathBuf> = all
                .iter()
                .filter(|rel| rel.to_string_lossy().contains(part))
                .cloned()
                .collect();
            assert!(!group.is_empty(), "{}: no file matches {part}", target.name);
            group
        })
        .collect()
}

/// `to` mirrors `from`: the same folders, each file a link to the original (cheap per case).
fn mirror(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            mirror(&entry.path(), &target);
        } else {
            std::os::unix::fs::symlink(entry.path(), &target).unwrap();
        }
    }
}

/// Mutates `bytes` one to three times; text files get hostile numbers half of the time.
fn mutations(rng: &mut Rng, bytes: &mut Vec<u8>, text: bool) -> Vec<String> {
    let steps = 1 + rng.below(3);
    (0..steps)
        .map(|_| {
            if text && rng.below(2) == 0 {
                if let Some(what) = mutate_number(rng, bytes) {
                    return what;
                }
            }
            mutate(rng, bytes)
        })
        .collect()
}

/// How a run ended.
struct Run {
    code: Option<i32>,
    signal: Option<i32>,
    stderr: String,
    took: Duration,
    timed_out: bool,
}

/// Runs brainrecon with `args` under the address-space and time limits.
fn run_limited(args: &[String]) -> Run {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut command = Command::new(env!("CARGO_BIN_EXE_brainrecon"));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (status, false);
        }
        if started.elapsed() > time_limit() {
            let _ = child.kill();
            break (child.wait().unwrap(), true);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.code(),
        signal: status.signal(),
        stderr: reader.join().unwrap(),
        took: started.elapsed(),
        timed_out,
    }
}

/// What was wrong with a run, if anything. A refusal must name the mutated file or a path in
/// the case's inputs (`names`); `left` lists what a failed run left beside its inputs.
fn verdict(run: &Run, names: [&str; 2], left: &[String]) -> Option<String> {
    // A panic's message, else the end of what it printed.
    let tail: String = match run.stderr.find("panicked at") {
        Some(from) => run.stderr[from..].chars().take(400).collect(),
        None => {
            let skip = run.stderr.chars().count().saturating_sub(400);
            run.stderr.chars().skip(skip).collect()
        }
    };
    if run.timed_out {
        return Some(format!("hang: still running after {:?}", run.took));
    }
    if let Some(signal) = run.signal {
        return Some(format!("abort: signal {signal}: {tail}"));
    }
    match run.code {
        Some(0) => None,
        Some(2) if !left.is_empty() => Some(format!("failed and left {left:?} behind: {tail}")),
        Some(2) if !names.iter().any(|name| run.stderr.contains(name)) => {
            Some(format!("exit 2 without naming a file: {tail}"))
        }
        Some(2) => None,
        Some(101) => Some(format!("panic: {tail}")),
        code => Some(format!("exit {code:?} (bad input must exit 2): {tail}")),
    }
}

/// Runs `cases()` mutated cases of `target`; panics listing the failures.
fn fuzz(target: &Target) {
    let files = mutated_files(target);
    assert!(!files.is_empty(), "{}: no files to mutate", target.name);
    let work = tempfile::tempdir().unwrap();
    let mut rng = Rng(seed()
        ^ target
            .name
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31) ^ b as u64));
    let (mut refused, mut failures, mut slowest) = (0, Vec::new(), Duration::ZERO);
    // Refusals naming the mutated file itself (the others name another input they read).
    let mut named_mutated = 0;
    for case in 0..cases() {
        let group = &files[rng.below(files.len())];
        let rel = &group[rng.below(group.len())];
        let case_dir = work.path().join(format!("case{case}"));
        let inputs_dir = case_dir.join("in");
        for input in target.inputs {
            mirror(&inputs().join(input), &inputs_dir.join(input));
        }
        let mut bytes = std::fs::read(inputs().join(rel)).unwrap();
        let text = rel
            .extension()
            .is_some_and(|e| ["json", "tsv", "csv", "txt"].contains(&e.to_str().unwrap()));
        let what = mutations(&mut rng, &mut bytes, text);
        let file = inputs_dir.join(rel);
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, &bytes).unwrap();
        let out = case_dir.join("out");
        let args = command_of(target, &inputs_dir, &out, &file);
        let run = run_limited(&args);
        slowest = slowest.max(run.took);
        // What a failed run left beside its inputs (a run that succeeded may write its output).
        let left: Vec<String> = std::fs::read_dir(&case_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != "in" && run.code != Some(0))
            .collect();
        let file_name = rel.file_name().unwrap().to_string_lossy();
        if run.code == Some(2) {
            refused += 1;
            named_mutated += usize::from(run.stderr.contains(&*file_name));
        }
        if let Some(failure) = verdict(&run, [&file_name, p(&inputs_dir)], &left) {
            let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashers");
            std::fs::create_dir_all(&keep).unwrap();
            let kept = keep.join(format!(
                "{}-seed{}-case{case}-{file_name}",
                target.name,
                seed()
            ));
            std::fs::write(&kept, &bytes).unwrap();
            failures.push(format!(
                "{} case {case}: {} ({}) → {failure}\n    kept as {}\n    brainrecon {}",
                target.name,
                rel.display(),
                what.join("; "),
                kept.display(),
                args.join(" ")
            ));
        }
        let _ = std::fs::remove_dir_all(&case_dir);
    }
    println!(
        "{}: {} cases over {} files, {refused} refused (exit 2; {named_mutated} naming the mutated file), {} failures, slowest {slowest:?}",
        target.name,
        cases(),
        files.iter().map(Vec::len).sum::<usize>(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The valid inputs run clean: a failure below is the mutation's doing.
fn valid_run(target: &Target) {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let file = inputs().join(&mutated_files(target)[0][0]);
    let args = command_of(target, inputs(), &out, &file);
    let run = run_limited(&args);
    assert_eq!(
        run.code,
        Some(0),
        "{}: {args:?}: {}",
        target.name,
        run.stderr
    );
}

fn target(name: &str) -> &'static Target {
    TARGETS.iter().find(|t| t.name == name).unwrap()
}

macro_rules! fuzz_targets {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                valid_run(target($name));
                fuzz(target($name));
            }
        )*
        #[test]
        fn every_target_has_a_test() {
            let tested = [$($name),*];
            for t in TARGETS {
                assert!(tested.contains(&t.name), "{} has no test", t.name);
            }
        }
    };
}

fuzz_targets! {
    nsd_prepare => "nsd-prepare",
    info => "info",
    fit_pixels => "fit-pixels",
    decode => "decode",
    eval => "eval",
    ridge_fit => "ridge-fit",
    ridge_predict => "ridge-predict",
    ridge_merge => "ridge-merge",
    train_word2vec_corpus => "train-word2vec-corpus",
    generate => "generate",
    bids_prepare => "bids-prepare",
    bids_prepare_ds005531 => "bids-prepare-ds005531",
    bids_prepare_fmriprep => "bids-prepare-fmriprep",
    glm => "glm",
    glm_prepare => "glm-prepare",
    glm_nsd => "glm-nsd",
    glm_compare_nsd => "glm-compare-nsd",
    features_text => "features-text",
    video_prepare => "video-prepare",
    stream_edf => "stream-edf",
    encode_runs => "encode-runs",
    video_fit => "video-fit",
    music_fit => "music-fit",
    music_retrieve => "music-retrieve",
    stream_arrays => "stream-arrays",
    fit_latents => "fit-latents",
    reconstruct_linear => "reconstruct-linear",
    group_prepare => "group-prepare",
    group_adapt => "group-adapt",
    group_adapt_srm => "group-adapt-srm",
    cortex_draw => "cortex-draw",
    cortex_draw_freesurfer => "cortex-draw-freesurfer",
    eeg_bids_prepare => "eeg-bids-prepare",
    eeg_fit => "eeg-fit",
    eeg_eval => "eeg-eval",
}

/// A size above a limit names the limit's variable; raised, the same command runs.
fn refused_under(variable: &str, value: &str, line: &str) {
    let args = words(line, &[("{d}", inputs())]);
    let out = Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(&args)
        .env(variable, value)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(variable), "{stderr}");
    let raised = Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(&args)
        .env(variable, "1_000_000_000")
        .output()
        .unwrap();
    assert!(
        raised.status.success(),
        "{args:?} with {variable} raised: {}",
        String::from_utf8_lossy(&raised.stderr)
    );
}

#[test]
fn limits_are_listed_and_raised_by_their_variables() {
    let out = Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(["info", "--limits", "--json"])
        .env("BRAINRECON_MAX_SAMPLE_RATE", "48000")
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 5, "{rows:?}");
    let rate = rows
        .iter()
        .find(|r| r["variable"] == "BRAINRECON_MAX_SAMPLE_RATE")
        .unwrap();
    assert_eq!(rate["value"], 48000);
    assert_eq!(rate["default"], 1_536_000);
    refused_under(
        "BRAINRECON_MAX_ARRAY_BYTES",
        "1000",
        "nsd prepare --nsd-root {d}/nsd --subject subj01 --out {d}/limited-subject",
    );
    refused_under(
        "BRAINRECON_MAX_IMAGE_PIXELS",
        "100",
        "eval --stimuli {d}/subj01 --recons {d}/recons --json",
    );
    refused_under(
        "BRAINRECON_MAX_SAMPLE_RATE",
        "100",
        "stream --source {d}/signals/edf_mixed.edf --model {d}/shapes-ldm --steps 1 --fast \
         --frames 1 --no-serve",
    );
}
