//! Checkpoints: exact resumption, the newest two kept, bad folders named.

mod common;

use std::path::Path;

use brainrecon_nn::checkpoint::{
    latest_checkpoint, load_checkpoint, save_checkpoint, Checkpoint, KEEP_CHECKPOINTS,
};
use common::{bits, AdamFixture};

#[test]
fn resuming_from_a_checkpoint_is_bit_identical() {
    let fx = AdamFixture::load();
    let steps = fx.usize("steps");
    // Uninterrupted.
    let straight = fx.params();
    let mut opt = fx.optimizer();
    for k in 0..steps {
        fx.step(k, &mut opt, &straight);
    }
    // Interrupted after 2 steps: checkpoint, then new variables and a loaded optimizer.
    let dir = tempfile::tempdir().unwrap();
    let first = fx.params();
    let mut opt1 = fx.optimizer();
    for k in 0..2 {
        fx.step(k, &mut opt1, &first);
    }
    let extra = serde_json::json!({"epoch": 0, "note": "mid-way"});
    save_checkpoint(dir.path(), 2, &first, &opt1, &extra).unwrap();
    let (step, path) = latest_checkpoint(dir.path()).unwrap().unwrap();
    assert_eq!(step, 2);
    let mut resumed = fx.params();
    let (mut opt2, extra2) = load_checkpoint(&path, &mut resumed).unwrap();
    assert_eq!(extra2, extra);
    assert_eq!(opt2.step_count(), 2);
    for k in 2..steps {
        fx.step(k, &mut opt2, &resumed);
        fx.step(k, &mut opt1, &first);
    }
    for ((name, a), (_, b)) in straight.vars().into_iter().zip(resumed.vars()) {
        assert_eq!(bits(a.as_tensor()), bits(b.as_tensor()), "{name} differs");
    }
    for ((name, a), (_, b)) in straight.vars().into_iter().zip(first.vars()) {
        assert_eq!(bits(a.as_tensor()), bits(b.as_tensor()), "{name} differs");
    }
    for name in &fx.names {
        assert_eq!(
            bits(opt.exp_avg_sq(name).unwrap()),
            bits(opt2.exp_avg_sq(name).unwrap())
        );
        assert_eq!(opt.param_step(name), opt2.param_step(name));
    }
    assert_eq!(opt.lr(), opt2.lr());
}

fn step_dirs(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn checkpoints_keep_the_latest_two() {
    let fx = AdamFixture::load();
    let params = fx.params();
    let mut opt = fx.optimizer();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ckpt");
    assert_eq!(latest_checkpoint(&root).unwrap(), None);
    for k in 0..4 {
        fx.step(k, &mut opt, &params);
        let saved = Checkpoint::save(
            &root,
            (k + 1) * 10,
            &params,
            &opt,
            &serde_json::json!({"k": k}),
        )
        .unwrap();
        assert_eq!(saved.dir, root.join(format!("step-{}", (k + 1) * 10)));
    }
    assert_eq!(KEEP_CHECKPOINTS, 2);
    assert_eq!(step_dirs(&root), vec!["step-30", "step-40"]);
    for d in ["step-30", "step-40"] {
        let mut files = step_dirs(&root.join(d));
        files.sort();
        assert_eq!(
            files,
            vec!["optimizer.safetensors", "params.safetensors", "state.json"]
        );
    }
    let latest = Checkpoint::latest(&root).unwrap().unwrap();
    assert_eq!(latest.step, 40);
    // Saving the same step again replaces it.
    let saved =
        Checkpoint::save(&root, 40, &params, &opt, &serde_json::json!({"k": "again"})).unwrap();
    assert_eq!(step_dirs(&root), vec!["step-30", "step-40"]);
    let mut restored = fx.params();
    let (opt2, extra) = saved.load(&mut restored).unwrap();
    assert_eq!(extra, serde_json::json!({"k": "again"}));
    assert_eq!(opt2.step_count(), 4);
    // Folders that are not checkpoints are ignored; a state.json naming another step is an
    // error naming the file.
    std::fs::create_dir_all(root.join("step-99x")).unwrap();
    std::fs::create_dir_all(root.join("step-99")).unwrap(); // incomplete: no state.json
    assert_eq!(latest_checkpoint(&root).unwrap().unwrap().0, 40);
    std::fs::rename(root.join("step-30"), root.join("step-31")).unwrap();
    let msg = load_checkpoint(&root.join("step-31"), &mut restored)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("state.json") && msg.contains("30"), "{msg}");
}

#[test]
fn a_run_killed_before_its_clean_up_resumes_to_the_folder_of_an_unbroken_one() {
    let fx = AdamFixture::load();
    let params = fx.params();
    let opt = fx.optimizer();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ckpt");
    for step in 1..=3 {
        save_checkpoint(&root, step, &params, &opt, &serde_json::json!({})).unwrap();
    }
    assert_eq!(step_dirs(&root), vec!["step-2", "step-3"]);
    // Killed after step-3 landed but before step-1 was removed: three checkpoints. The
    // resumed run, finding the last step done, saves none; finding the newest removes the one
    // too many.
    let aside = dir.path().join("aside");
    save_checkpoint(&aside, 1, &params, &opt, &serde_json::json!({})).unwrap();
    std::fs::rename(aside.join("step-1"), root.join("step-1")).unwrap();
    assert_eq!(latest_checkpoint(&root).unwrap().unwrap().0, 3);
    assert_eq!(step_dirs(&root), vec!["step-2", "step-3"]);
    // Saving goes on from there, the newest two kept.
    save_checkpoint(&root, 4, &params, &opt, &serde_json::json!({})).unwrap();
    assert_eq!(step_dirs(&root), vec!["step-3", "step-4"]);
}
