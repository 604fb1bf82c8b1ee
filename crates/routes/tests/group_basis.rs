//! `group adapt`'s product with a space's basis read by blocks of rows
//! (`group::data::times_basis`) equals the product with the basis held whole, across block
//! boundaries, and a bad basis is refused naming the file, the field and the place.

use brainrecon_formats::npy;
use brainrecon_routes::group::data::{times_basis, BASIS_BLOCK_ROWS};
use faer::Mat;

#[test]
fn the_product_by_blocks_equals_the_whole_product_and_a_bad_basis_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // Two whole blocks and a part: every boundary is crossed.
    let (n, d, k) = (3, 2 * BASIS_BLOCK_ROWS + 5, 4);
    let y = Mat::from_fn(n, d, |i, j| ((i * 31 + j * 7) as f64 * 0.013).sin());
    let p: Vec<f32> = (0..d * k).map(|i| (i as f32 * 0.011).cos()).collect();
    let path = tmp.path().join("basis.npy");
    npy::write(&path, &[d, k], &p).unwrap();
    let whole = |p: &[f32]| {
        Mat::from_fn(n, k, |i, c| {
            (0..d)
                .map(|j| y[(i, j)] * f64::from(p[j * k + c]))
                .sum::<f64>()
        })
    };
    let close = |a: &Mat<f64>, b: &Mat<f64>| {
        (0..n).all(|i| (0..k).all(|c| (a[(i, c)] - b[(i, c)]).abs() < 1e-10))
    };
    let got = times_basis(&y, &path, k, "the basis").unwrap();
    assert!(close(&got, &whole(&p)), "{got:?}");
    // The last block's last row counts.
    let mut last = p.clone();
    last[d * k - 1] += 1.0;
    npy::write(&path, &[d, k], &last).unwrap();
    let moved = times_basis(&y, &path, k, "the basis").unwrap();
    assert!(close(&moved, &whole(&last)) && !close(&moved, &got));

    let err = times_basis(&y, &path, k + 1, "the space's basis")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("basis.npy") && err.contains("shape") && err.contains("the space's basis"),
        "{err}"
    );
    let mut bad = p.clone();
    bad[(BASIS_BLOCK_ROWS + 2) * k + 1] = f32::NAN;
    npy::write(&path, &[d, k], &bad).unwrap();
    let err = times_basis(&y, &path, k, "the basis")
        .unwrap_err()
        .to_string();
    let row = BASIS_BLOCK_ROWS + 2;
    assert!(
        err.contains("basis.npy") && err.contains(&format!("NaN at row {row}, column 1")),
        "{err}"
    );
    let wide: Vec<f64> = p.iter().map(|&v| f64::from(v)).collect();
    npy::write(&path, &[d, k], &wide).unwrap();
    let err = times_basis(&y, &path, k, "the basis")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("basis.npy") && err.contains("dtype") && err.contains("<f8"),
        "{err}"
    );
}
