//! ds005531 as OpenNeuro ships it (crates/cli/tests/fixtures/ds005531_shipped, written by
//! tools/fixtures/ds005531_shipped.py): dataDT longer than the movie, Japanese annotations with
//! the real markup, the shipped GPT-2 feature files. The guide's commands run unchanged on it
//! and each kind's planted voxels come out best explained by their own band.

mod common;

use brainrecon_datasets::ds005531::{annotation_segments, Markup};
use brainrecon_language::word2vec::words_of;
use common::{copy_dir, p};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KINDS: [&str; 4] = [
    "objectiveAnnot50chara",
    "speechTranscription",
    "speechTranscription_EN",
    "story",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn dataset() -> PathBuf {
    fixtures().join("ds005531_shipped")
}

fn extra(name: &str) -> PathBuf {
    fixtures().join("ds005531_extra").join(name)
}

/// Runs brainrecon in `dir` (relative paths as a user types them).
fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run brainrecon")
}

fn ok_in(dir: &Path, args: &[&str]) -> String {
    let out = run_in(dir, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn user_error_in(dir: &Path, args: &[&str]) -> String {
    let out = run_in(dir, args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: expected exit 2, stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// A working folder where `ds005531` and `ja-word2vec.txt` are what a user downloaded.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(dataset(), dir.path().join("ds005531")).unwrap();
    std::os::unix::fs::symlink(extra("w2v-ja.txt"), dir.path().join("ja-word2vec.txt")).unwrap();
    dir
}

/// The commands of the guide's ds005531 block (docs/datasets/ds005531.md), as argument lists.
fn readme_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/datasets/ds005531.md"),
    )
    .unwrap();
    let marker = readme
        .find("<!-- ds005531 commands")
        .expect("the ds005531 page marks the ds005531 block");
    let block = readme[marker..]
        .split("```")
        .nth(1)
        .expect("a code block after the marker");
    let commands: Vec<Vec<String>> = block
        .replace("\\\n", " ")
        .lines()
        .filter(|l| l.starts_with("brainrecon "))
        .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect())
        .collect();
    assert_eq!(commands.len(), 4, "{block}");
    commands
}

#[derive(serde::Deserialize)]
struct Group {
    name: String,
    driven_by: String,
    features: String,
    voxels: Vec<[usize; 3]>,
}

#[derive(serde::Deserialize)]
struct Truth {
    groups: Vec<Group>,
    durations: std::collections::BTreeMap<String, usize>,
    datadt_rows: std::collections::BTreeMap<String, usize>,
}

fn truth() -> Truth {
    serde_json::from_str(&std::fs::read_to_string(extra("truth.json")).unwrap()).unwrap()
}

/// Mean split R² of each band (columns, in `bands` order) over each group's voxels.
fn split_by_group(runs: &Path, enc: &Path, groups: &[&Group], bands: usize) -> Vec<Vec<f64>> {
    let voxels = brainrecon_formats::npy::read_i64(&runs.join("voxels.npy")).unwrap();
    let index: Vec<[usize; 3]> = voxels
        .data
        .chunks_exact(3)
        .map(|c| [c[0] as usize, c[1] as usize, c[2] as usize])
        .collect();
    let split = brainrecon_formats::npy::read_f32(&enc.join("r2_split.npy")).unwrap();
    assert_eq!(split.shape, [bands, index.len()]);
    groups
        .iter()
        .map(|g| {
            let cols: Vec<usize> = g
                .voxels
                .iter()
                .map(|v| {
                    index
                        .iter()
                        .position(|x| x == v)
                        .expect("group voxel in the run set")
                })
                .collect();
            (0..bands)
                .map(|b| {
                    cols.iter()
                        .map(|&c| split.data[b * index.len() + c] as f64)
                        .sum::<f64>()
                        / cols.len() as f64
                })
                .collect()
        })
        .collect()
}

/// Every group driven by `features` is best explained by its own kind's band.
fn assert_own_band_best(dir: &Path, enc: &str, features: &str) {
    let truth = truth();
    let groups: Vec<&Group> = truth
        .groups
        .iter()
        .filter(|g| g.features == features)
        .collect();
    assert_eq!(groups.len(), 4);
    let table = split_by_group(&dir.join("runs/S01"), &dir.join(enc), &groups, KINDS.len());
    for (g, row) in groups.iter().zip(&table) {
        let own = KINDS.iter().position(|k| *k == g.driven_by).unwrap();
        let best = (0..KINDS.len())
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap();
        assert_eq!(
            best, own,
            "{} ({features}): split R² per band {row:?}",
            g.name
        );
        assert!(
            row[own] > 0.05,
            "{}: own band explains little: {row:?}",
            g.name
        );
    }
}

#[test]
fn markup_is_read_as_the_authors_read_it() {
    #[derive(serde::Deserialize)]
    struct Case {
        kind: String,
        line: String,
        segments: Vec<String>,
        tokens: Vec<Vec<String>>,
    }
    let cases: Vec<Case> =
        serde_json::from_str(&std::fs::read_to_string(extra("line_cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 30);
    for case in &cases {
        let segments = annotation_segments(Markup::Ds005531, &case.kind, &case.line);
        assert_eq!(segments, case.segments, "{} {:?}", case.kind, case.line);
        let tokens: Vec<Vec<String>> = segments.iter().map(|s| words_of(s)).collect();
        assert_eq!(tokens, case.tokens, "{} {:?}", case.kind, case.line);
    }
    // Plain text (the simulator's annotations) is one segment, blank lines none.
    assert_eq!(
        annotation_segments(Markup::Plain, "story", "a/b: c"),
        ["a/b: c"]
    );
    assert!(annotation_segments(Markup::Plain, "story", "  ").is_empty());
}

#[test]
fn readme_commands_reach_maps_with_shipped_gpt2_and_segmented_word2vec() {
    let work = workspace();
    let dir = work.path();
    let commands = readme_commands();
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok_in(dir, &args);
    }
    // bids prepare kept rows 21 … duration and said what it left out.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("runs/S01/runset.json")).unwrap())
            .unwrap();
    let truth = truth();
    for run in meta["runs"].as_array().unwrap() {
        let name = run["name"].as_str().unwrap();
        let (duration, rows) = (truth.durations[name], truth.datadt_rows[name]);
        assert_eq!(run["n_trs"], duration - 20, "{name}");
        assert_eq!(run["dropped_end_volumes"], rows - duration, "{name}");
    }
    assert_own_band_best(dir, "enc/S01-gpt2", "GPT2medium_jp_layer12");
    assert_own_band_best(dir, "enc/S01-w2v", "word2vec");
}

#[test]
fn text_model_features_equal_features_text_output() {
    // encode-runs featurising the run set's annotations and encode-runs reading what
    // `features text` wrote from the dataset's annotation folder see the same rows.
    let work = workspace();
    let dir = work.path();
    let commands = readme_commands();
    for args in [&commands[0], &commands[2]] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok_in(dir, &args);
    }
    let fit = |bands: &str, out: &str| {
        ok_in(
            dir,
            &[
                "encode-runs",
                "--subject",
                "runs/S01",
                "--bands",
                bands,
                "--text-model",
                "ja-word2vec.txt",
                "--n-iter",
                "2",
                "--permutations",
                "10",
                "--out",
                out,
            ],
        )
    };
    fit("story,speechTranscription", "enc/direct");
    fit("story=feats/w2v,speechTranscription=feats/w2v", "enc/files");
    for name in ["r2_split.npy", "r.npy"] {
        let a = brainrecon_formats::npy::read_f32(&dir.join("enc/direct").join(name)).unwrap();
        let b = brainrecon_formats::npy::read_f32(&dir.join("enc/files").join(name)).unwrap();
        assert_eq!(a.shape, b.shape);
        let worst = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "{name}: differs by {worst}");
    }
}

#[test]
fn japanese_through_an_english_model_is_refused_then_allowed() {
    let work = workspace();
    let dir = work.path();
    ok_in(
        dir,
        &readme_commands()[0]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let args = [
        "encode-runs",
        "--subject",
        "runs/S01",
        "--bands",
        "story,speechTranscription_EN",
        "--n-iter",
        "2",
        "--permutations",
        "10",
        "--out",
        "enc/movie",
    ];
    let err = user_error_in(dir, &args);
    assert!(
        err.contains("band story") && err.contains("out of the vocabulary"),
        "{err}"
    );
    assert!(err.contains("--allow-weak-bands"), "{err}");
    assert!(!dir.join("enc/movie/encoding.json").exists());
    let mut allowed = args.to_vec();
    allowed.push("--allow-weak-bands");
    let out = run_in(dir, &allowed);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: band story"), "{stderr}");
}

#[test]
fn one_training_run_suggests_folds() {
    let work = workspace();
    let dir = work.path();
    ok_in(
        dir,
        &readme_commands()[0]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let mut args = vec![
        "encode-runs",
        "--subject",
        "runs/S01",
        "--bands",
        "story:GPT2medium_jp_layer12",
        "--test-runs",
        "task-breakingbad_run-02,task-breakingbad_run-03",
        "--n-iter",
        "2",
        "--permutations",
        "10",
        "--out",
        "enc/one",
    ];
    let err = user_error_in(dir, &args);
    assert!(err.contains("--folds K"), "{err}");
    args.extend(["--folds", "3"]);
    let summary = ok_in(dir, &args);
    assert!(summary.contains("voxels"), "{summary}");
}

#[test]
fn datadt_shorter_than_the_movie_is_refused() {
    // Copy the tree and lengthen one run's annotations past its dataDT rows.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("ds005531");
    copy_dir(&dataset(), &copy);
    let truth = truth();
    let rows = truth.datadt_rows["task-breakingbad_run-03"];
    for kind in KINDS {
        let file = copy.join(format!(
            "derivatives/annotation/breakingbad_run-03_{kind}_each1sec.txt"
        ));
        let mut text = std::fs::read_to_string(&file).unwrap();
        let lines = text.lines().count();
        for s in lines..rows + 3 {
            text.push_str(&format!("[00:{:02}:{:02}]\n", s / 60, s % 60));
        }
        std::fs::write(&file, text).unwrap();
    }
    let err = user_error_in(
        dir.path(),
        &[
            "bids",
            "prepare",
            "--layout",
            "ds005531",
            "--bids-root",
            p(&copy),
            "--subject",
            "S01",
            "--task",
            "breakingbad",
            "--out",
            "runs",
        ],
    );
    assert!(err.contains("sub-S01_task-breakingbad_run-03.mat"), "{err}");
    assert!(
        err.contains("dataDT") && err.contains(&format!("{rows} rows")),
        "{err}"
    );
    assert!(!dir.path().join("runs").exists() && !dir.path().join("runs.partial").exists());
}

fn prepare_args(root: &str) -> Vec<&str> {
    vec![
        "bids",
        "prepare",
        "--layout",
        "ds005531",
        "--bids-root",
        root,
        "--subject",
        "S01",
        "--task",
        "breakingbad",
        "--out",
        "runs",
    ]
}

#[test]
fn a_run_without_annotations_is_named_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("ds005531");
    copy_dir(&dataset(), &copy);
    for kind in KINDS {
        std::fs::remove_file(copy.join(format!(
            "derivatives/annotation/breakingbad_run-02_{kind}_each1sec.txt"
        )))
        .unwrap();
    }
    let err = user_error_in(dir.path(), &prepare_args(p(&copy)));
    assert!(
        err.contains("breakingbad_run-02_<kind>_each1sec.txt")
            && err.contains("sub-S01_task-breakingbad_run-02.mat")
            && err.contains("--layout bids"),
        "{err}"
    );
    assert!(!dir.path().join("runs").exists() && !dir.path().join("runs.partial").exists());
}

#[test]
fn markup_is_found_when_the_first_line_has_no_stamp() {
    // A first line without a `[HH:MM:SS]` stamp once turned a whole file into plain text.
    let work = workspace();
    let dir = work.path();
    let source = dataset().join("derivatives/annotation/breakingbad_run-01_story_each1sec.txt");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::create_dir_all(dir.join("ann")).unwrap();
    std::fs::write(dir.join("ann/stamped_story_each1sec.txt"), &text).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let unstamped = first.split_once(']').unwrap().1;
    std::fs::write(
        dir.join("ann/first_story_each1sec.txt"),
        format!("{unstamped}\n{rest}"),
    )
    .unwrap();
    ok_in(
        dir,
        &[
            "features",
            "text",
            "--model",
            "ja-word2vec.txt",
            "--annotations",
            "ann",
            "--out",
            "feats",
        ],
    );
    let a =
        brainrecon_formats::npy::read_f32(&dir.join("feats/stamped_story_each1sec.npy")).unwrap();
    let b = brainrecon_formats::npy::read_f32(&dir.join("feats/first_story_each1sec.npy")).unwrap();
    assert_eq!(a.shape, b.shape);
    assert_eq!(
        a.data, b.data,
        "every row, the unstamped first line included"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("feats/features.json")).unwrap())
            .unwrap();
    assert_eq!(
        record["files"]["first_story_each1sec"]["markup"],
        "ds005531"
    );
}

#[test]
fn a_line_past_the_limit_is_refused_naming_file_and_line() {
    let work = workspace();
    let dir = work.path();
    std::fs::create_dir_all(dir.join("ann")).unwrap();
    let long = "男性が座る".repeat(80_000); // 1.2 MB
    std::fs::write(
        dir.join("ann/long_story_each1sec.txt"),
        format!("[00:00:00]短い\n[00:00:01]{long}\n"),
    )
    .unwrap();
    let args = [
        "features",
        "text",
        "--model",
        "ja-word2vec.txt",
        "--annotations",
        "ann",
        "--out",
        "feats",
    ];
    let err = user_error_in(dir, &args);
    assert!(
        err.contains("long_story_each1sec.txt")
            && err.contains("line 2")
            && err.contains("BRAINRECON_MAX_LINE_BYTES"),
        "{err}"
    );
    assert!(!dir.join("feats").exists() && !dir.join("feats.partial").exists());
    // Raised, the line is segmented in linear time.
    let out = Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(args)
        .current_dir(dir)
        .env("BRAINRECON_MAX_LINE_BYTES", "2000000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_feature_folder_out_of_vocabulary_is_refused_as_a_featurised_band_is() {
    // word2vec-movie is English: ds005531's Japanese story is mostly out of its vocabulary,
    // whether encode-runs featurises it or reads what `features text` wrote.
    let work = workspace();
    let dir = work.path();
    ok_in(
        dir,
        &readme_commands()[0]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    ok_in(
        dir,
        &[
            "features",
            "text",
            "--model",
            "word2vec-movie",
            "--annotations",
            "ds005531/derivatives/annotation",
            "--out",
            "feats/english",
        ],
    );
    let args = [
        "encode-runs",
        "--subject",
        "runs/S01",
        "--bands",
        "story=feats/english,speechTranscription_EN=feats/english",
        "--n-iter",
        "2",
        "--permutations",
        "10",
        "--out",
        "enc/dir",
    ];
    let err = user_error_in(dir, &args);
    assert!(
        err.contains("band story")
            && err.contains("out of the vocabulary of word2vec-movie")
            && err.contains("feats/english"),
        "{err}"
    );
    assert!(!dir.join("enc/dir/encoding.json").exists());
}

#[test]
fn an_all_zero_dataset_feature_is_named_without_advising_what_was_used() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("ds005531");
    copy_dir(&dataset(), &copy);
    // Every story feature file of the dataset replaced by one of zeros with the same shape.
    for entry in std::fs::read_dir(copy.join("derivatives/feature")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.contains("_story_GPT2medium_jp_layer12") {
            let stim = &brainrecon_formats::mat::read_matrices(&path, &["stim"]).unwrap()[0];
            let zeros = brainrecon_formats::mat::Matrix {
                rows: stim.rows,
                cols: stim.cols,
                values: vec![0.0; stim.rows * stim.cols],
            };
            std::fs::write(
                &path,
                brainrecon_formats::mat::encode_doubles(&[("stim", &zeros)]),
            )
            .unwrap();
        }
    }
    ok_in(dir.path(), &prepare_args(p(&copy)));
    let err = user_error_in(
        dir.path(),
        &[
            "encode-runs",
            "--subject",
            "runs",
            "--bands",
            "story:GPT2medium_jp_layer12,speechTranscription:GPT2medium_jp_layer12",
            "--n-iter",
            "2",
            "--permutations",
            "10",
            "--out",
            "enc",
        ],
    );
    assert!(
        err.contains("band story") && err.contains("_story_GPT2medium_jp_layer12_mean.mat"),
        "{err}"
    );
    assert!(
        !err.contains("0 of 0") && !err.contains("KIND:GPT2medium_jp_layer12"),
        "{err}"
    );
}

#[test]
fn word2vec_trained_on_the_annotations_has_every_word_the_route_looks_up() {
    // A Japanese word2vec made with the project, from the dataset's own annotations split as
    // the route splits them: `features text` then finds every word.
    let work = workspace();
    let dir = work.path();
    let train = [
        "train-word2vec",
        "--corpus",
        "ds005531/derivatives/annotation",
        "--min-count",
        "1",
        "--dim",
        "16",
        "--epochs",
        "2",
        "--seed",
        "3",
        "--json",
    ];
    let with_out = |out: &'static str| -> Vec<&str> {
        let mut args = train.to_vec();
        args.extend(["--out", out]);
        args
    };
    let summary: serde_json::Value =
        serde_json::from_str(&ok_in(dir, &with_out("w2v-own"))).unwrap();
    let files = summary["files"].as_array().unwrap();
    assert_eq!(files.len(), 12, "{summary}");
    assert!(files.iter().all(|f| f["markup"] == "ds005531"), "{summary}");
    let words = summary["corpus_words"].as_u64().unwrap();
    assert!(words > 100, "{summary}");
    assert_eq!(summary["corpus_words_in_vocabulary"], words, "{summary}");
    // The route's own split of a story file: every word is in the vectors.
    let vectors =
        brainrecon_language::word2vec::Word2Vec::load(&dir.join("w2v-own/vectors.bin")).unwrap();
    let story = dataset().join("derivatives/annotation/breakingbad_run-01_story_each1sec.txt");
    let mut seen = 0;
    for line in std::fs::read_to_string(story).unwrap().lines() {
        for segment in annotation_segments(Markup::Ds005531, "story", line) {
            for word in words_of(&segment) {
                assert!(vectors.vector(&word).is_some(), "{word} is missing");
                seen += 1;
            }
        }
    }
    assert!(seen > 10);
    ok_in(
        dir,
        &[
            "features",
            "text",
            "--model",
            "w2v-own/vectors.bin",
            "--annotations",
            "ds005531/derivatives/annotation",
            "--out",
            "feats/own",
        ],
    );
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("feats/own/features.json")).unwrap(),
    )
    .unwrap();
    for (stem, file) in record["files"].as_object().unwrap() {
        assert_eq!(file["skipped"], 0, "{stem}: {file}");
    }
    // The seed fixes the vectors.
    ok_in(dir, &with_out("w2v-again"));
    assert_eq!(
        std::fs::read(dir.join("w2v-own/vectors.bin")).unwrap(),
        std::fs::read(dir.join("w2v-again/vectors.bin")).unwrap()
    );
    let training: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("w2v-own/training.json")).unwrap())
            .unwrap();
    assert!(training["command"].as_str().unwrap().contains("--corpus"));
    assert_eq!(training["config"]["dim"], 16);
}

#[test]
fn a_corpus_that_cannot_be_read_is_named() {
    let work = workspace();
    let dir = work.path();
    let err = user_error_in(
        dir,
        &["train-word2vec", "--corpus", "missing.txt", "--out", "w"],
    );
    assert!(err.contains("missing.txt"), "{err}");
    std::fs::write(dir.join("bad.txt"), b"fine line\nbad \xff byte\n").unwrap();
    let err = user_error_in(
        dir,
        &["train-word2vec", "--corpus", "bad.txt", "--out", "w"],
    );
    assert!(err.contains("bad.txt") && err.contains("line 2"), "{err}");
    std::fs::write(dir.join("rare.txt"), "one two three\n").unwrap();
    let err = user_error_in(
        dir,
        &["train-word2vec", "--corpus", "rare.txt", "--out", "w"],
    );
    assert!(err.contains("--min-count"), "{err}");
    let err = user_error_in(
        dir,
        &[
            "train-word2vec",
            "--corpus",
            "rare.txt",
            "--dim",
            "0",
            "--out",
            "w",
        ],
    );
    assert!(err.contains("--dim"), "{err}");
    assert!(
        !dir.join("w").exists(),
        "a refused training left its output"
    );
    let err = user_error_in(dir, &["train-word2vec", "--dim", "8", "--out", "w"]);
    assert!(err.contains("--corpus"), "{err}");
}
