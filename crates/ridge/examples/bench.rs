//! `cargo run --release -p brainrecon-ridge --example bench -- N_TRAIN N_TEST P T N_ALPHAS`
fn main() -> Result<(), brainrecon_ridge::RidgeError> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("integer argument"))
        .collect();
    let [n_train, n_test, p, t, n_alphas] = args[..] else {
        panic!("usage: bench N_TRAIN N_TEST P T N_ALPHAS");
    };
    let report = brainrecon_ridge::bench_workload(n_train, n_test, p, t, n_alphas, 0)?;
    println!("{n_train}x{p} -> {t} targets, {n_alphas} alphas: {report:?}");
    Ok(())
}
