//! An interrupted fit resumes: `glm_single_resumable` keeps TYPEA, TYPEB and GLMdenoise as they
//! finish, and a fit given them gives what an unbroken fit gives (on the GLMdenoise fixture).

use brainrecon_glm::glmsingle::{glm_single, glm_single_resumable, Params};
use brainrecon_glm::stages::{StageStore, Step};
mod common;

use common::Experiment;
use std::collections::BTreeMap;

/// Keeps stages in memory; records what was loaded.
#[derive(Default)]
struct Memory {
    kept: BTreeMap<&'static str, Vec<Vec<f64>>>,
    loaded: Vec<&'static str>,
}

impl StageStore for Memory {
    fn load(&mut self, step: Step) -> Option<Vec<Vec<f64>>> {
        let kept = self.kept.get(step.name()).cloned();
        if kept.is_some() {
            self.loaded.push(step.name());
        }
        kept
    }
    fn save(&mut self, step: Step, arrays: &[&[f64]]) {
        self.kept
            .insert(step.name(), arrays.iter().map(|a| a.to_vec()).collect());
    }
}

#[test]
fn a_fit_resumed_from_its_kept_stages_equals_an_unbroken_fit() {
    let f = common::fixture("glmsingle_denoise.json");
    let e = Experiment::read(&f);
    let params = Params::new(e.stimdur, e.tr, &vec![e.n_times; e.designs.len()]);
    let runs = e.runs();
    let unbroken = glm_single(&runs, e.voxels, e.conditions, &params).unwrap();

    let mut store = Memory::default();
    let first = glm_single_resumable(&runs, e.voxels, e.conditions, &params, &mut store).unwrap();
    assert_eq!(first, unbroken);
    assert!(store.loaded.is_empty());
    assert_eq!(
        store.kept.keys().copied().collect::<Vec<_>>(),
        ["glmdenoise", "typea", "typeb"]
    );

    // Interrupted after GLMdenoise: the rerun takes all three stages and ends the same.
    let resumed = glm_single_resumable(&runs, e.voxels, e.conditions, &params, &mut store).unwrap();
    assert_eq!(store.loaded, ["typea", "typeb", "glmdenoise"]);
    assert_eq!(resumed, unbroken);

    // Interrupted after TYPEB: GLMdenoise is fitted again.
    store.kept.remove("glmdenoise");
    store.loaded.clear();
    let resumed = glm_single_resumable(&runs, e.voxels, e.conditions, &params, &mut store).unwrap();
    assert_eq!(store.loaded, ["typea", "typeb"]);
    assert_eq!(resumed, unbroken);

    // The kept stages are what the fit uses: a kept TYPEB beta shows in the result.
    let mut changed = store.kept["typeb"].clone();
    changed[2][0] += 1.0;
    store.kept.insert("typeb", changed);
    let altered = glm_single_resumable(&runs, e.voxels, e.conditions, &params, &mut store).unwrap();
    assert_eq!(altered.typeb.betasmd[0], unbroken.typeb.betasmd[0] + 1.0);

    // A stage of another shape (another fit's) is fitted again and replaced.
    store.kept.insert("typea", vec![vec![0.0; 3]; 3]);
    let refit = glm_single_resumable(&runs, e.voxels, e.conditions, &params, &mut store).unwrap();
    assert_eq!(refit.typea, unbroken.typea);
    assert_eq!(store.kept["typea"][0].len(), e.voxels);
}
