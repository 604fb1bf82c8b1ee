//! TYPEA and TYPEB on a folder of runs, timed: the brainrecon side of `tools/bench/glmsingle.sh`.
//!
//! ```text
//! cargo run --release -p brainrecon-glm --example typeb -- DIR
//! DIR/meta.json              {"tr", "stimdur", "runs", "degree"}
//! DIR/data_runP.npy          float32 (n_times, voxels)
//! DIR/design_runP.npy        float (n_times, conditions), 1 at each onset TR
//! → DIR/brainrecon_onoffR2.npy, brainrecon_HRFindex.npy (int64), brainrecon_R2.npy,
//!   brainrecon_betasmd.npy (voxels, trials); prints {"seconds_typea", "seconds_typeb"}
//! ```

use brainrecon_data::npy;
use brainrecon_glm::fit::{fit_hrf_library, fit_on_off, Run};
use brainrecon_glm::hrf::{canonical_hrf, hrf_library};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: typeb DIR")?);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json"))?)?;
    let number = |k: &str| meta[k].as_f64().ok_or(format!("meta.json: {k}"));
    let (tr, stimdur) = (number("tr")?, number("stimdur")?);
    let n_runs = number("runs")? as usize;
    let degree = number("degree")? as usize;
    let mut data = Vec::new();
    let mut designs = Vec::new();
    for p in 1..=n_runs {
        data.push(npy::read_f32(&dir.join(format!("data_run{p}.npy")))?);
        let design = npy::read_f32(&dir.join(format!("design_run{p}.npy")))?;
        let values: Vec<f64> = design.data.iter().map(|&v| v as f64).collect();
        designs.push((design.shape, values));
    }
    let (voxels, conditions) = (data[0].shape[1], designs[0].0[1]);
    let runs: Vec<Run> = data
        .iter()
        .zip(&designs)
        .map(|(d, x)| Run {
            data: &d.data,
            design: &x.1,
            n_times: d.shape[0],
            extra: &[],
        })
        .collect();
    let degrees = vec![degree; n_runs];
    let started = Instant::now();
    let onoff = fit_on_off(
        &runs,
        voxels,
        conditions,
        &canonical_hrf(stimdur, tr),
        &degrees,
    )?;
    let seconds_typea = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let typeb = fit_hrf_library(
        &runs,
        voxels,
        conditions,
        &hrf_library(stimdur, tr),
        &degrees,
    )?;
    let seconds_typeb = started.elapsed().as_secs_f64();
    let trials = typeb.stim_order.len();
    npy::write(
        &dir.join("brainrecon_onoffR2.npy"),
        &[voxels],
        &onoff.onoff_r2,
    )?;
    let index: Vec<i64> = typeb.hrf_index.iter().map(|&i| i as i64).collect();
    npy::write(&dir.join("brainrecon_HRFindex.npy"), &[voxels], &index)?;
    npy::write(&dir.join("brainrecon_R2.npy"), &[voxels], &typeb.r2)?;
    npy::write(
        &dir.join("brainrecon_betasmd.npy"),
        &[voxels, trials],
        &typeb.betasmd,
    )?;
    println!("{{\"seconds_typea\": {seconds_typea}, \"seconds_typeb\": {seconds_typeb}}}");
    Ok(())
}
