//! All four of GLMsingle's models against its own `GLM_single.fit` with its defaults and extra
//! regressors (`tools/fixtures/glmsingle_denoise.py`: 4 runs × 100 volumes, 180 voxels of which
//! 60 respond with library HRFs, 100 do not and 20 are dark; three global noise components,
//! two motion-like confounds given as extra regressors, a run with strong drift; 84 trials of
//! 8 conditions repeated in every run). GLMsingle computes in float32, brainrecon-glm in
//! float64: values agree to float32's rounding of the fits.

use brainrecon_glm::glmsingle::{glm_single, GlmSingle, Params};
use brainrecon_glm::tail::tail_threshold;
mod common;

use common::{numbers, worst, Experiment};
use serde_json::Value;
use std::sync::OnceLock;

fn fixture() -> &'static Value {
    static FIXTURE: OnceLock<Value> = OnceLock::new();
    FIXTURE.get_or_init(|| common::fixture("glmsingle_denoise.json"))
}

fn integers(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// GLMsingle's models on the fixture's runs, fitted once for all tests.
fn fitted() -> &'static GlmSingle {
    static FIT: OnceLock<GlmSingle> = OnceLock::new();
    FIT.get_or_init(|| {
        let f = fixture();
        let e = Experiment::read(f);
        let params = Params::new(e.stimdur, e.tr, &vec![e.n_times; e.designs.len()]);
        assert_eq!(params.degrees, integers(&f["maxpolydeg"]), "maxpolydeg");
        glm_single(&e.runs(), e.voxels, e.conditions, &params).unwrap()
    })
}

fn agree(what: &str, ours: &[f64], theirs: &Value, tolerance: f64) {
    let (error, scale) = worst(ours, &numbers(theirs));
    eprintln!("{what}: largest difference {error:.2e} (largest value {scale:.3})");
    assert!(
        error <= tolerance * scale,
        "{what}: {error} against {scale}"
    );
}

#[test]
fn tail_thresholds_equal_glmsingles_to_its_grid() {
    let f = fixture();
    for case in f["tails"].as_array().unwrap() {
        let values = numbers(&case["values"]);
        let theirs = case["threshold"].as_f64().unwrap();
        let (ours, _) = tail_threshold(&values).unwrap();
        // GLMsingle searches a grid of 500 over the range: a step is ~0.2% of the spread.
        let spread = values.iter().copied().fold(f64::MIN, f64::max)
            - values.iter().copied().fold(f64::MAX, f64::min);
        eprintln!("{}: ours {ours:.4}, GLMsingle's {theirs:.4}", case["name"]);
        assert!((ours - theirs).abs() <= 0.01 * spread, "{}", case["name"]);
    }
    let fit = fitted();
    let theirs = f["brainR2"].as_f64().unwrap();
    eprintln!(
        "brainR2: ours {:.4}, GLMsingle's {theirs:.4}",
        fit.r2_threshold
    );
    assert!((fit.r2_threshold - theirs).abs() < 0.05 * theirs.abs());
}

#[test]
fn typea_and_typeb_with_extra_regressors_equal_glmsingles() {
    let (f, fit) = (fixture(), fitted());
    agree(
        "TYPEA meanvol",
        &fit.typea.meanvol,
        &f["typea"]["meanvol"],
        1e-6,
    );
    agree(
        "TYPEA onoffR2",
        &fit.typea.onoff_r2,
        &f["typea"]["onoffR2"],
        1e-5,
    );
    agree(
        "TYPEA betasmd",
        &fit.typea.betasmd,
        &f["typea"]["betasmd"],
        1e-5,
    );
    assert_eq!(
        fit.typeb.hrf_index,
        integers(&f["typeb"]["HRFindex"]),
        "HRFindex"
    );
    agree("TYPEB R2", &fit.typeb.r2, &f["typeb"]["R2"], 2e-5);
    agree(
        "TYPEB betasmd",
        &fit.typeb.betasmd,
        &f["typeb"]["betasmd"],
        1e-5,
    );
}

#[test]
fn glmdenoise_pool_components_and_their_number_equal_glmsingles() {
    let (f, fit) = (fixture(), fitted());
    let denoise = fit.denoise.as_ref().expect("GLMdenoise ran");
    let bools = |v: &Value| integers(v).iter().map(|&b| b == 1).collect::<Vec<bool>>();
    assert_eq!(
        denoise.noisepool,
        bools(&f["typec"]["noisepool"]),
        "noisepool"
    );
    assert_eq!(denoise.pcvoxels, bools(&f["typec"]["pcvoxels"]), "pcvoxels");
    agree(
        "glmbadness",
        &denoise.glmbadness,
        &f["typec"]["glmbadness"],
        1e-4,
    );
    agree(
        "xvaltrend",
        &denoise.xvaltrend,
        &f["typec"]["xvaltrend"],
        5e-5,
    );
    assert_eq!(
        denoise.pcnum,
        f["typec"]["pcnum"].as_u64().unwrap() as usize,
        "pcnum"
    );
}

#[test]
fn typec_and_typed_equal_glmsingles() {
    let (f, fit) = (fixture(), fitted());
    let typec = fit.typec.as_ref().expect("TYPEC");
    agree("TYPEC R2", &typec.r2, &f["typec"]["R2"], 5e-5);
    agree(
        "TYPEC betasmd",
        &typec.betasmd,
        &f["typec"]["betasmd"],
        5e-5,
    );
    let typed = fit.typed.as_ref().expect("TYPED");
    agree(
        "TYPED rrbadness",
        &typed.rrbadness,
        &f["typed"]["rrbadness"],
        2e-5,
    );
    // A voxel may pick another fraction only where two fractions' badness tie to float32's
    // rounding (GLMsingle's sums are float32); such voxels are left out of the comparisons.
    let theirs = numbers(&f["typed"]["FRACvalue"]);
    let badness = numbers(&f["typed"]["rrbadness"]);
    let fracs = badness.len() / theirs.len();
    let index = |frac: f64| ((1.0 - frac) / 0.05).round() as usize;
    let ties: Vec<usize> = (0..theirs.len())
        .filter(|&v| (typed.frac_value[v] - theirs[v]).abs() > 1e-6)
        .inspect(|&v| {
            let (a, b) = (
                badness[v * fracs + index(typed.frac_value[v])],
                badness[v * fracs + index(theirs[v])],
            );
            eprintln!(
                "voxel {v}: fraction {} against GLMsingle's {}, badness {a} against {b}",
                typed.frac_value[v], theirs[v]
            );
            assert!(
                (a - b).abs() <= 1e-5 * b,
                "voxel {v}: a fraction without a tie"
            );
        })
        .collect();
    assert!(ties.len() <= 2, "{} ties", ties.len());
    let kept = |values: &[f64], per_voxel: usize| -> Vec<f64> {
        values
            .chunks(per_voxel)
            .enumerate()
            .filter(|(v, _)| !ties.contains(v))
            .flat_map(|(_, row)| row.to_vec())
            .collect()
    };
    let agree_kept = |what: &str, ours: &[f64], key: &str, tolerance: f64| {
        let theirs = numbers(&f["typed"][key]);
        let per_voxel = theirs.len() / typed.r2.len();
        let (error, scale) = worst(&kept(ours, per_voxel), &kept(&theirs, per_voxel));
        eprintln!("{what}: largest difference {error:.2e} (largest value {scale:.3})");
        assert!(
            error <= tolerance * scale,
            "{what}: {error} against {scale}"
        );
    };
    agree_kept("TYPED FRACvalue", &typed.frac_value, "FRACvalue", 1e-6);
    agree_kept("TYPED scaleoffset", &typed.scaleoffset, "scaleoffset", 3e-5);
    agree_kept("TYPED R2", &typed.r2, "R2", 3e-5);
    agree_kept("TYPED betasmd", &typed.betasmd, "betasmd", 3e-5);
}
