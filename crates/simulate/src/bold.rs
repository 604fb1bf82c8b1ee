//! What the continuous-recording simulators (movie, music) share: turning each brain voxel's
//! signal into BOLD volumes on a grid.

use std::path::{Path, PathBuf};

use brainrecon_core::error::Result;
use brainrecon_core::fs::write_json_atomic;
use brainrecon_formats::nifti4d::{self, Storage};
use brainrecon_formats::npy;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// One run's volumes (`trs` of them, each `shape` x-fastest): baseline × (1 + (signal + drift +
/// noise) / 100) at the brain voxels `flat`, a dim noisy background elsewhere. `signal` is
/// TR-major (`trs × flat.len()`, percent signal change); each voxel drifts by a linear trend and
/// a 300–900 s sinusoid, both of amplitude `drift` (in percent, times a standard normal draw);
/// the noise has standard deviation `1 / snr` percent.
#[allow(clippy::too_many_arguments)]
pub(super) fn bold_volumes(
    rng: &mut ChaCha8Rng,
    flat: &[usize],
    baseline: &[f64],
    signal: &[f64],
    trs: usize,
    tr: f64,
    shape: [usize; 3],
    (drift, snr): (f64, f64),
) -> Vec<Vec<f64>> {
    let normal = Normal::new(0.0, 1.0).unwrap();
    let len: usize = shape.iter().product();
    let n = flat.len();
    assert_eq!(
        signal.len(),
        trs * n,
        "one signal value per TR and brain voxel"
    );
    let drifts: Vec<(f64, f64, f64, f64)> = (0..n)
        .map(|_| {
            (
                drift * normal.sample(rng),
                drift * normal.sample(rng),
                rng.gen_range(300.0..900.0),
                rng.gen_range(0.0..std::f64::consts::TAU),
            )
        })
        .collect();
    (0..trs)
        .map(|t| {
            let time = t as f64 * tr;
            let mut volume: Vec<f64> = (0..len)
                .map(|_| (30.0 + 3.0 * normal.sample(rng)).max(0.0))
                .collect();
            for (v, &f) in flat.iter().enumerate() {
                let (slope, amplitude, period, phase) = drifts[v];
                let d = slope * (time / (trs as f64 * tr) - 0.5)
                    + amplitude * (std::f64::consts::TAU * time / period + phase).sin();
                let percent = signal[t * n + v] + d + normal.sample(rng) / snr;
                volume[f] = baseline[v] * (1.0 + percent / 100.0);
            }
            volume
        })
        .collect()
}

/// The voxel-to-world matrix of a simulated grid: 3 mm voxels, centred on the origin.
pub(super) fn grid_affine(shape: [usize; 3]) -> [[f64; 4]; 4] {
    centred_affine(shape, 3.0)
}

/// The voxel-to-world matrix of a grid of `size`-mm voxels centred on the origin (NSD's
/// `func1pt8mm` grids are 1.8 mm).
pub(super) fn centred_affine(shape: [usize; 3], size: f64) -> [[f64; 4]; 4] {
    [
        [size, 0.0, 0.0, -size * shape[0] as f64 / 2.0],
        [0.0, size, 0.0, -size * shape[1] as f64 / 2.0],
        [0.0, 0.0, size, -size * shape[2] as f64 / 2.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

/// Writes one BIDS run's BOLD series as `<stem>_<bold_name>` (int16 with a slope, as scanners'
/// converters store it: 0.05 keeps 0.005% steps at 1000) and its `<stem>_bold.json` sidecar,
/// where the stem is `sub-<subject>/func/sub-<subject>_task-<task>_run-NN`; returns the stem's
/// files as a function of their suffix, for the run's other files (events).
pub(super) fn write_bold_run(
    root: &Path,
    (subject, task, run): (&str, &str, usize),
    bold_name: &str,
    tr: f64,
    shape: [usize; 3],
    series: &[Vec<f64>],
) -> Result<impl Fn(&str) -> PathBuf> {
    let stem = root.join(format!(
        "sub-{subject}/func/sub-{subject}_task-{task}_run-{run:02}"
    ));
    let file = move |suffix: &str| PathBuf::from(format!("{}_{suffix}", stem.display()));
    let storage = Storage::Int16 {
        slope: 0.05,
        inter: 0.0,
    };
    nifti4d::write_series(
        &file(bold_name),
        shape,
        tr,
        &grid_affine(shape),
        storage,
        series,
    )?;
    write_json_atomic(
        &file("bold.json"),
        &serde_json::json!({"RepetitionTime": tr, "TaskName": task}),
    )?;
    Ok(file)
}

/// `voxels.npy` (brain voxels, 3) int32 (i, j, k) of each flat index (x fastest) and
/// `voxel_group.npy` (brain voxels,) int32 group index, in `dir`.
pub fn write_voxel_truth(
    dir: &Path,
    flat: &[usize],
    group: &[usize],
    shape: [usize; 3],
) -> Result<()> {
    let ijk: Vec<i32> = flat
        .iter()
        .flat_map(|&f| {
            [
                f % shape[0],
                (f / shape[0]) % shape[1],
                f / (shape[0] * shape[1]),
            ]
        })
        .map(|c| c as i32)
        .collect();
    npy::write(&dir.join("voxels.npy"), &[flat.len(), 3], &ijk)?;
    let group: Vec<i32> = group.iter().map(|&g| g as i32).collect();
    npy::write(&dir.join("voxel_group.npy"), &[flat.len()], &group)
}
