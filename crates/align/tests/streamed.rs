//! The shared space fitted from row blocks against the in-memory fit: the same bits with one
//! block of a dual subject, rounding otherwise (blocks summed in turn; primal `X (V B)` for
//! `(X V) B`), and the memory bound from the sizes.

use brainrecon_align::shared_space::{fit_shared_space, gcv_alpha, SharedSpaceOptions};
use brainrecon_align::streamed::{
    fit_shared_space_blocks, gcv_alpha_blocks, peak_bytes, BlockSpectrum, BlockSubject, MatRows,
    SubjectSize,
};
use brainrecon_align::AlignError;
use faer::{Mat, MatRef};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn randn(rng: &mut ChaCha8Rng, r: usize, c: usize) -> Mat<f64> {
    let mut m = Mat::from_fn(r, c, |_, _| {
        let u1: f64 = 1.0 - rng.gen::<f64>();
        let u2: f64 = rng.gen::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    });
    for j in 0..c {
        let mean = (0..r).map(|i| m[(i, j)]).sum::<f64>() / r as f64;
        for i in 0..r {
            m[(i, j)] -= mean;
        }
    }
    m
}

/// Betas with a planted rank-4 link to the targets, so the space and the alphas are well
/// defined (a clear spectral gap).
fn group(rng: &mut ChaCha8Rng, sizes: &[(usize, usize)], d: usize) -> Vec<(Mat<f64>, Mat<f64>)> {
    let loading_y = randn(rng, 4, d);
    sizes
        .iter()
        .map(|&(n, v)| {
            let latent = randn(rng, n, 4);
            let loading_x = randn(rng, 4, v);
            let x = &latent * &loading_x + randn(rng, n, v) * 0.5;
            let y = &latent * &loading_y * 3.0 + randn(rng, n, d) * 0.3;
            (x, y)
        })
        .collect()
}

fn max_diff(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> (f64, f64) {
    assert_eq!((a.nrows(), a.ncols()), (b.nrows(), b.ncols()));
    let (mut diff, mut scale) = (0.0f64, 0.0f64);
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            diff = diff.max((a[(i, j)] - b[(i, j)]).abs());
            scale = scale.max(a[(i, j)].abs());
        }
    }
    (diff, scale)
}

/// Fits both ways and returns the largest difference of the basis and of the maps, each over
/// its largest entry; `bits` asks the same bits.
fn compare(
    sizes: &[(usize, usize)],
    d: usize,
    opts: &SharedSpaceOptions,
    block_rows: usize,
) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(7 + d as u64 + block_rows as u64);
    let data = group(&mut rng, sizes, d);
    let grid = [0.1, 1.0, 10.0, 100.0, 1000.0];
    let alphas: Vec<f64> = data
        .iter()
        .map(|(x, y)| gcv_alpha(x.as_ref(), y.as_ref(), &grid).unwrap())
        .collect();
    let xs: Vec<_> = data.iter().map(|(x, _)| x.as_ref()).collect();
    let ys: Vec<_> = data.iter().map(|(_, y)| y.as_ref()).collect();
    let memory = fit_shared_space(&xs, &ys, &alphas, opts).unwrap();

    let x_rows: Vec<MatRows> = data.iter().map(|(x, _)| MatRows(x.as_ref())).collect();
    let y_rows: Vec<MatRows> = data.iter().map(|(_, y)| MatRows(y.as_ref())).collect();
    let spectra: Vec<BlockSpectrum> = x_rows
        .iter()
        .map(|x| BlockSpectrum::from_blocks(x, block_rows).unwrap())
        .collect();
    let streamed_alphas: Vec<f64> = spectra
        .iter()
        .zip(&x_rows)
        .zip(&y_rows)
        .map(|((sp, x), y)| gcv_alpha_blocks(sp, x, y, &grid, block_rows).unwrap())
        .collect();
    assert_eq!(
        streamed_alphas, alphas,
        "GCV's choice from the shared spectrum"
    );
    let subjects: Vec<BlockSubject<'_, AlignError>> = spectra
        .iter()
        .zip(&x_rows)
        .zip(&y_rows)
        .map(|((spectrum, x), y)| BlockSubject { x, y, spectrum })
        .collect();
    let streamed = fit_shared_space_blocks(&subjects, &alphas, opts, block_rows).unwrap();
    let (db, sb) = max_diff(memory.basis.as_ref(), streamed.basis.as_ref());
    let mut worst = db / sb;
    for (a, b) in memory.maps.iter().zip(&streamed.maps) {
        let (dm, sm) = max_diff(a.as_ref(), b.as_ref());
        worst = worst.max(dm / sm);
    }
    for (a, b) in memory.singular_values.iter().zip(&streamed.singular_values) {
        worst = worst.max((a - b).abs() / a.abs());
    }
    worst
}

fn options(k: usize, exact_below: usize) -> SharedSpaceOptions {
    SharedSpaceOptions {
        k,
        seed: 3,
        exact_below,
        ..SharedSpaceOptions::default()
    }
}

#[test]
fn dual_subjects_in_one_block_give_the_same_bits() {
    // v ≥ n and the whole subject in one block: every product is the same call.
    let sizes = [(30, 60), (25, 45), (40, 40)];
    assert_eq!(compare(&sizes, 20, &options(4, 3000), 64), 0.0, "exact");
    assert_eq!(compare(&sizes, 50, &options(4, 0), 64), 0.0, "randomized");
}

#[test]
fn blocks_and_primal_subjects_agree_to_rounding() {
    // Dual subjects split into blocks, primal subjects (n > v), and a mix.
    let tolerance = 1e-9;
    for (sizes, what) in [
        (vec![(30, 60), (25, 45)], "dual in blocks"),
        (vec![(60, 20), (45, 25)], "primal"),
        (vec![(60, 20), (25, 45), (33, 33)], "mixed"),
    ] {
        for (opts, path) in [(options(4, 3000), "exact"), (options(4, 0), "randomized")] {
            let worst = compare(&sizes, 30, &opts, 7);
            eprintln!("{what}, {path}: relative difference {worst:e}");
            assert!(
                worst < tolerance,
                "{what}, {path}: relative difference {worst:e} ≥ {tolerance:e}"
            );
        }
    }
}

#[test]
fn the_bound_counts_the_spectra_and_the_probes() {
    let opts = SharedSpaceOptions {
        k: 1024,
        ..SharedSpaceOptions::default()
    };
    // NSD's full size: 7 subjects × 27,000 trials × 15,724 voxels → 75,520 targets.
    let nsd = vec![
        SubjectSize {
            rows: 27_000,
            voxels: 15_724,
        };
        7
    ];
    let bytes = peak_bytes(&nsd, 75_520, 512, &opts, 256);
    // At least the seven 15,724² spectra and three 75,520 × 1,034 probes, f64.
    let floor = 8 * (7 * 15_724u64 * 15_724 + 3 * 75_520 * 1_034);
    assert!(bytes >= floor, "{bytes} < {floor}");
    assert!(bytes < 24_000_000_000, "NSD's full size: {bytes} bytes");
    // Twice the subjects: more.
    let fourteen = vec![nsd[0]; 14];
    assert!(peak_bytes(&fourteen, 75_520, 512, &opts, 256) > bytes);
}

#[test]
fn a_block_of_the_wrong_shape_is_refused() {
    struct Short;
    impl brainrecon_align::streamed::RowBlocks for Short {
        type Error = AlignError;
        fn rows(&self) -> usize {
            10
        }
        fn cols(&self) -> usize {
            20
        }
        fn block(&self, _: usize, len: usize) -> Result<Mat<f64>, AlignError> {
            Ok(Mat::zeros(len, 19))
        }
    }
    let err = match BlockSpectrum::from_blocks(&Short, 4) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a short block was taken"),
    };
    assert!(err.contains("expected 4 × 20"), "{err}");
}
