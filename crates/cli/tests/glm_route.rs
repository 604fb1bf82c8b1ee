//! Your own experiment, end to end on the simulated one: `simulate --kind events` (raw BIDS +
//! fMRIPrep-shaped derivatives with planted HRFs and trial amplitudes) → `glm` (GLMsingle's
//! TYPEA–TYPED) → the planted truth recovered as GLMsingle's paper finds it: the library HRF
//! found well above chance, single-trial betas closer to the planted ones and more reliable
//! across repeats from TYPEB to TYPED. Then bad input refused with exit status 2.

mod common;

use brainrecon_formats::npy;
use common::{json, ok, p as s, user_error};
use std::path::Path;

fn floats(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = npy::read_f32(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (a.shape.clone(), a.data)
}

/// Pearson correlation.
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma).powi(2);
        bb += (y - mb).powi(2);
    }
    ab / (aa * bb).sqrt().max(1e-300)
}

/// Trials × voxels betas of a model, as f64 columns per voxel.
fn betas(glm: &Path, model: &str) -> (usize, usize, Vec<f32>) {
    let (shape, data) = floats(&glm.join(model).join("betasmd.npy"));
    (shape[0], shape[1], data)
}

/// Per voxel in `voxels`: the correlation of its betas (voxels × trials) with `target`
/// (trials × all voxels), averaged.
fn mean_correlation(model: &(usize, usize, Vec<f32>), target: &[f32], voxels: &[usize]) -> f64 {
    let (n_vox, trials, data) = model;
    let total: f64 = voxels
        .iter()
        .map(|&v| {
            let ours: Vec<f64> = (0..*trials).map(|t| data[v * trials + t] as f64).collect();
            let planted: Vec<f64> = (0..*trials).map(|t| target[t * n_vox + v] as f64).collect();
            correlation(&ours, &planted)
        })
        .sum();
    total / voxels.len() as f64
}

/// Per voxel in `voxels`: the correlation between the betas of an image's first and second
/// presentations over the images shown at least twice, averaged (test-retest reliability).
fn reliability(model: &(usize, usize, Vec<f32>), condition: &[usize], voxels: &[usize]) -> f64 {
    let (_, trials, data) = model;
    let mut seen: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (t, &c) in condition.iter().enumerate() {
        seen.entry(c).or_default().push(t);
    }
    let repeated: Vec<(usize, usize)> = seen
        .values()
        .filter(|t| t.len() >= 2)
        .map(|t| (t[0], t[1]))
        .collect();
    let total: f64 = voxels
        .iter()
        .map(|&v| {
            let first: Vec<f64> = repeated
                .iter()
                .map(|&(a, _)| data[v * trials + a] as f64)
                .collect();
            let second: Vec<f64> = repeated
                .iter()
                .map(|&(_, b)| data[v * trials + b] as f64)
                .collect();
            correlation(&first, &second)
        })
        .sum();
    total / voxels.len() as f64
}

/// `glm` on the simulated dataset `sim` into `out`, with `extra` options.
fn glm_args<'a>(
    sim: &'a Path,
    fmriprep: &'a Path,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "glm",
        "--fmriprep",
        s(fmriprep),
        "--bids-root",
        s(sim),
        "--subject",
        "01",
        "--task",
        "images",
        "--space",
        "T1w",
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn glm_recovers_the_planted_experiment_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, glm) = (dir.path().join("sim"), dir.path().join("glm"));
    ok(&[
        "simulate",
        "--kind",
        "events",
        "--out",
        s(&sim),
        "--seed",
        "3",
    ]);
    let fmriprep = sim.join("derivatives/fmriprep");
    let args = glm_args(&sim, &fmriprep, &glm, &[]);
    let printed = ok(&args);
    assert!(printed.contains("TYPED_FITHRF_GLMDENOISE_RR"), "{printed}");

    // The trials in GLMsingle's order, one condition per image (stim_file).
    let truth = json(&sim.join("truth/events_truth.json"));
    let meta = json(&glm.join("glm.json"));
    let planted_trials = truth["trials"].as_array().unwrap();
    let trials = meta["trials"].as_array().unwrap();
    assert_eq!(trials.len(), planted_trials.len());
    assert_eq!(meta["condition_column"], "stim_file");
    assert_eq!(
        meta["conditions"].as_array().unwrap().len(),
        truth["images"].as_array().unwrap().len()
    );
    assert_eq!(meta["stimdur"], 3.0);
    let condition: Vec<usize> = trials
        .iter()
        .map(|t| t["condition"].as_u64().unwrap() as usize)
        .collect();
    for (ours, planted) in trials.iter().zip(planted_trials) {
        assert_eq!(ours["run"], planted[0]);
        assert_eq!(ours["onset"], planted[1]);
    }
    let n_vox = meta["n_voxels"].as_u64().unwrap() as usize;
    assert_eq!(
        n_vox,
        truth["brain_voxels"].as_u64().unwrap() as usize,
        "the brain mask's voxels"
    );

    // The planted library HRF is found for the voxels that respond (chance: 1 in 20 exactly,
    // about 3 in 20 within one).
    let planted_hrf = npy::read_i64(&sim.join("truth/hrf_index.npy"))
        .unwrap()
        .data;
    let (_, found) = floats(&glm.join("TYPEB_FITHRF/HRFindex.npy"));
    let (_, r2) = floats(&glm.join("TYPEB_FITHRF/R2.npy"));
    let visual: Vec<usize> = npy::read_u8(&sim.join("truth/visual.npy"))
        .unwrap()
        .data
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == 1)
        .map(|(v, _)| v)
        .collect();
    let mut responsive: Vec<usize> = visual.clone();
    responsive.sort_by(|&a, &b| r2[b].total_cmp(&r2[a]));
    responsive.truncate(visual.len() / 4);
    let near = responsive
        .iter()
        .filter(|&&v| (found[v] as i64 - planted_hrf[v] as i64).abs() <= 1)
        .count() as f64
        / responsive.len() as f64;
    eprintln!("HRF within one of the planted for {near:.3} of the best quarter of visual voxels");
    assert!(near > 0.5, "HRF recovery {near}");

    // Single-trial betas: closer to the planted amplitudes and more reliable across repeats
    // from TYPEB to TYPED, as in GLMsingle's paper.
    let (_, planted) = floats(&sim.join("truth/trial_psc.npy"));
    let typeb = betas(&glm, "TYPEB_FITHRF");
    let typec = betas(&glm, "TYPEC_FITHRF_GLMDENOISE");
    let typed = betas(&glm, "TYPED_FITHRF_GLMDENOISE_RR");
    let accuracy: Vec<f64> = [&typeb, &typec, &typed]
        .iter()
        .map(|m| mean_correlation(m, &planted, &visual))
        .collect();
    let reliable: Vec<f64> = [&typeb, &typec, &typed]
        .iter()
        .map(|m| reliability(m, &condition, &visual))
        .collect();
    eprintln!(
        "correlation with the planted betas, TYPEB/C/D: {accuracy:.3?}; reliability {reliable:.3?}"
    );
    assert!(
        accuracy[0] < accuracy[1] && accuracy[1] < accuracy[2] && accuracy[2] > accuracy[0] + 0.03,
        "{accuracy:?}"
    );
    assert!(
        reliable[2] > reliable[0] + 0.02 && reliable[1] > reliable[0],
        "{reliable:?}"
    );
    assert!(
        meta["pcnum"].as_u64().unwrap() >= 1,
        "GLMdenoise found the global noise"
    );

    // A rerun does nothing; other settings into the same folder are refused.
    assert!(ok(&args).contains("already fitted"));
    let err = user_error(&glm_args(&sim, &fmriprep, &glm, &["--stimdur", "2"]));
    assert!(err.contains("other settings"), "{err}");

    // Bad input names the file and the field; nothing is left behind.
    let bad = dir.path().join("bad");
    let err = user_error(&glm_args(
        &sim,
        &fmriprep,
        &bad,
        &["--condition-column", "image_name"],
    ));
    assert!(
        err.contains("events.tsv") && err.contains("image_name"),
        "{err}"
    );
    assert!(
        err.contains(s(&sim.join("sub-01/func"))),
        "the raw dataset's file: {err}"
    );
    assert!(!bad.exists(), "nothing written");
}
