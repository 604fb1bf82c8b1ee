//! `cargo run --release -p brainrecon-ridge --example bench_banded -- VOXELS N_ITER [THREADS]`:
//! the banded workload of `brainrecon bench banded` (3×300 features, 3,000 + 600 TRs),
//! generated in memory, without the .npy round trip or the himalaya anchor.
use brainrecon_ridge::bench_banded::{
    banded_bench_alphas, banded_bench_candidates, generate_banded, run_banded, BandedWorkload,
};

fn main() -> Result<(), brainrecon_ridge::RidgeError> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("integer argument"))
        .collect();
    let (voxels, n_iter) = match args[..] {
        [v, n, ..] => (v, n),
        _ => panic!("usage: bench_banded VOXELS N_ITER [THREADS]"),
    };
    if let Some(&threads) = args.get(2) {
        brainrecon_ridge::set_threads(threads);
    }
    let workload = BandedWorkload {
        t: voxels,
        ..BandedWorkload::issue()
    };
    let data = generate_banded(&workload, 0);
    let report = run_banded(
        &data,
        workload.run_labels(),
        banded_bench_candidates(n_iter, workload.widths.len(), 0)?,
        banded_bench_alphas(),
    )?;
    println!("{voxels} voxels, {n_iter} candidates: {report:?}");
    Ok(())
}
