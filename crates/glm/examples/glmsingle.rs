//! GLMsingle's models on a folder of runs, timed: the brainrecon side of
//! `tools/bench/glmsingle.sh`.
//!
//! ```text
//! cargo run --release -p brainrecon-glm --example glmsingle -- DIR ab|all
//! DIR/meta.json              {"tr", "stimdur", "runs", "degree"}
//! DIR/data_runP.npy          float32 (n_times, voxels)
//! DIR/design_runP.npy        float (n_times, conditions), 1 at each onset TR
//! → DIR/brainrecon_onoffR2.npy; of TYPEB (ab) or TYPED (all): brainrecon_HRFindex.npy
//!   (int64), brainrecon_R2.npy, brainrecon_betasmd.npy (voxels, trials); with all also
//!   brainrecon_FRACvalue.npy, brainrecon_pcnum.npy; prints {"seconds", "seconds_<stage>"}
//! ```

use brainrecon_formats::npy;
use brainrecon_glm::fit::{fit_hrf_library, fit_on_off, Run};
use brainrecon_glm::glmsingle::{glm_single, Params};
use std::path::{Path, PathBuf};
use std::time::Instant;

type Failure = Box<dyn std::error::Error>;
/// Each run's data (n_times, voxels) and design (n_times × conditions, row-major).
type Runs = (Vec<npy::Array<f32>>, Vec<Vec<f64>>);

/// The runs' data and designs (as f64) from DIR.
fn read_runs(dir: &Path, n_runs: usize) -> Result<Runs, Failure> {
    let mut data = Vec::new();
    let mut designs = Vec::new();
    for p in 1..=n_runs {
        data.push(npy::read_f32(&dir.join(format!("data_run{p}.npy")))?);
        let design = npy::read_f32(&dir.join(format!("design_run{p}.npy")))?;
        designs.push(design.data.iter().map(|&v| v as f64).collect());
    }
    Ok((data, designs))
}

fn main() -> Result<(), Failure> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: glmsingle DIR ab|all")?,
    );
    let all = std::env::args().nth(2).as_deref() != Some("ab");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json"))?)?;
    let number = |k: &str| meta[k].as_f64().ok_or(format!("meta.json: {k}"));
    let (tr, stimdur) = (number("tr")?, number("stimdur")?);
    let n_runs = number("runs")? as usize;
    let (data, designs) = read_runs(&dir, n_runs)?;
    let voxels = data[0].shape[1];
    let conditions = designs[0].len() / data[0].shape[0];
    let runs: Vec<Run> = data
        .iter()
        .zip(&designs)
        .map(|(d, x)| Run {
            data: &d.data,
            design: x,
            n_times: d.shape[0],
            extra: &[],
        })
        .collect();
    let n_times: Vec<usize> = data.iter().map(|d| d.shape[0]).collect();
    let mut params = Params::new(stimdur, tr, &n_times);
    params.degrees = vec![number("degree")? as usize; n_runs];
    let started = Instant::now();
    let write = |name: &str, shape: &[usize], values: &[f64]| {
        npy::write(&dir.join(format!("brainrecon_{name}.npy")), shape, values)
    };
    let index = |h: &[usize]| h.iter().map(|&i| i as i64).collect::<Vec<i64>>();
    if all {
        let fit = glm_single(&runs, voxels, conditions, &params)?;
        let seconds = started.elapsed().as_secs_f64();
        let typed = fit.typed.as_ref().ok_or("TYPED was skipped")?;
        let trials = fit.typeb.stim_order.len();
        write("onoffR2", &[voxels], &fit.typea.onoff_r2)?;
        npy::write(
            &dir.join("brainrecon_HRFindex.npy"),
            &[voxels],
            &index(&typed.hrf_index),
        )?;
        write("R2", &[voxels], &typed.r2)?;
        write("betasmd", &[voxels, trials], &typed.betasmd)?;
        write("FRACvalue", &[voxels], &typed.frac_value)?;
        let pcnum = fit.denoise.as_ref().map_or(0, |d| d.pcnum) as i64;
        npy::write(&dir.join("brainrecon_pcnum.npy"), &[1], &[pcnum])?;
        println!("{{\"seconds\": {seconds}}}");
        return Ok(());
    }
    let onoff = fit_on_off(
        &runs,
        voxels,
        conditions,
        &params.assumed_hrf,
        &params.degrees,
    )?;
    let seconds_typea = started.elapsed().as_secs_f64();
    let typeb = fit_hrf_library(&runs, voxels, conditions, &params.library, &params.degrees)?;
    let seconds = started.elapsed().as_secs_f64();
    let trials = typeb.stim_order.len();
    write("onoffR2", &[voxels], &onoff.onoff_r2)?;
    npy::write(
        &dir.join("brainrecon_HRFindex.npy"),
        &[voxels],
        &index(&typeb.hrf_index),
    )?;
    write("R2", &[voxels], &typeb.r2)?;
    write("betasmd", &[voxels, trials], &typeb.betasmd)?;
    println!(
        "{{\"seconds\": {seconds}, \"seconds_typea\": {seconds_typea}, \"seconds_typeb\": {}}}",
        seconds - seconds_typea
    );
    Ok(())
}
