//! The shared space of multi-subject reduced-rank ridge against brute-force forms of its
//! closed form, its objective, its adaptation step and its GCV choice of alpha.

use brainrecon_align::shared_space::{
    fit_shared_space, fit_subject_map, gcv_alpha, SharedSpace, SharedSpaceOptions,
};
use brainrecon_align::AlignError;
use faer::linalg::solvers::Solve;
use faer::{Mat, MatRef, Side};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn randn(rng: &mut ChaCha8Rng, r: usize, c: usize) -> Mat<f64> {
    let mut m = Mat::<f64>::zeros(r, c);
    for j in 0..c {
        for i in 0..r {
            m[(i, j)] = normal(rng);
        }
    }
    m
}

fn centre(mut m: Mat<f64>) -> Mat<f64> {
    for j in 0..m.ncols() {
        let mean = (0..m.nrows()).map(|i| m[(i, j)]).sum::<f64>() / m.nrows() as f64;
        for i in 0..m.nrows() {
            m[(i, j)] -= mean;
        }
    }
    m
}

fn max_abs(m: MatRef<'_, f64>) -> f64 {
    let mut best = 0.0f64;
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            best = best.max(m[(i, j)].abs());
        }
    }
    best
}

fn projector(p: MatRef<'_, f64>) -> Mat<f64> {
    p * p.transpose()
}

fn sq_norm(m: MatRef<'_, f64>) -> f64 {
    m.norm_l2().powi(2)
}

fn identity_plus(m: Mat<f64>, alpha: f64) -> Mat<f64> {
    let mut m = m;
    for i in 0..m.nrows() {
        m[(i, i)] += alpha;
    }
    m
}

/// `(A + αI)⁻¹ B` for symmetric positive definite `A + αI`.
fn solve_spd(a: Mat<f64>, alpha: f64, b: MatRef<'_, f64>) -> Mat<f64> {
    let a = identity_plus(a, alpha);
    let llt = a.llt(Side::Lower).unwrap();
    llt.solve(b)
}

/// Three subjects: dual (v > n), primal (v < n) and dual again, with different sizes.
struct Group {
    x: Vec<Mat<f64>>,
    y: Vec<Mat<f64>>,
    alphas: Vec<f64>,
}

impl Group {
    fn xs(&self) -> Vec<MatRef<'_, f64>> {
        self.x.iter().map(|m| m.as_ref()).collect()
    }
    fn ys(&self) -> Vec<MatRef<'_, f64>> {
        self.y.iter().map(|m| m.as_ref()).collect()
    }
}

/// Random group; with `rank = Some(r)` the targets are rank r plus `noise`, a clear gap after r.
fn group(seed: u64, d: usize, rank: Option<usize>, noise: f64) -> Group {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sizes = [(20, 30), (25, 12), (30, 45)];
    let b = rank.map(|r| randn(&mut rng, r, d));
    let mut x = Vec::new();
    let mut y = Vec::new();
    for &(n, v) in &sizes {
        x.push(centre(randn(&mut rng, n, v)));
        let ys = match &b {
            Some(b) => {
                let f = randn(&mut rng, n, b.nrows());
                let e = randn(&mut rng, n, d);
                &f * b + noise * &e
            }
            None => randn(&mut rng, n, d),
        };
        y.push(centre(ys));
    }
    Group {
        x,
        y,
        alphas: vec![1.0, 5.0, 0.5],
    }
}

fn fit(g: &Group, k: usize, exact_below: usize) -> SharedSpace {
    let opts = SharedSpaceOptions {
        k,
        exact_below,
        ..Default::default()
    };
    fit_shared_space(&g.xs(), &g.ys(), &g.alphas, &opts).unwrap()
}

/// Σ_s Y_sᵀ H_s Y_s with the explicit hat matrices `H_s = K_s (K_s + α_s I)⁻¹`.
fn brute_gram(g: &Group) -> Mat<f64> {
    let d = g.y[0].ncols();
    let mut gram = Mat::<f64>::zeros(d, d);
    for ((x, y), &a) in g.x.iter().zip(&g.y).zip(&g.alphas) {
        let k = x * x.transpose();
        // (K + αI)⁻¹ K = K (K + αI)⁻¹: they commute.
        let h = solve_spd(k.clone(), a, k.as_ref());
        gram += y.transpose() * &h * y;
    }
    gram
}

fn objective(g: &Group, maps: &[Mat<f64>], p: MatRef<'_, f64>) -> f64 {
    g.x.iter()
        .zip(&g.y)
        .zip(maps)
        .zip(&g.alphas)
        .map(|(((x, y), m), &a)| {
            sq_norm((y - x * m * p.transpose()).as_ref()) + a * sq_norm(m.as_ref())
        })
        .sum()
}

fn orthonormal(m: Mat<f64>) -> Mat<f64> {
    m.qr().compute_thin_Q()
}

#[test]
fn basis_is_the_top_eigenvectors_of_the_brute_force_matrix() {
    let g = group(1, 40, None, 0.0);
    let k = 5;
    let space = fit(&g, k, 3000);
    assert_eq!(space.basis.nrows(), 40);
    assert_eq!(space.basis.ncols(), k);
    let ptp = space.basis.transpose() * &space.basis;
    assert!(max_abs((ptp - Mat::<f64>::identity(k, k)).as_ref()) < 1e-12);

    let gram = brute_gram(&g);
    let evd = gram.self_adjoint_eigen(Side::Lower).unwrap();
    let d = gram.nrows();
    let top = Mat::from_fn(d, k, |i, j| evd.U()[(i, d - 1 - j)]);
    let diff = projector(space.basis.as_ref()) - projector(top.as_ref());
    assert!(
        max_abs(diff.as_ref()) < 1e-9,
        "projectors differ by {}",
        max_abs(diff.as_ref())
    );
    let s = evd.S().column_vector();
    for j in 0..k {
        let expect = s[d - 1 - j].sqrt();
        assert!((space.singular_values[j] - expect).abs() < 1e-9 * expect);
    }
    for (m, x) in space.maps.iter().zip(&g.x) {
        assert_eq!((m.nrows(), m.ncols()), (x.ncols(), k));
    }
}

#[test]
fn randomized_path_matches_the_exact_one_with_a_spectral_gap() {
    let g = group(2, 40, Some(5), 1e-3);
    let exact = fit(&g, 5, 3000);
    let random = fit(&g, 5, 0);
    let diff = projector(exact.basis.as_ref()) - projector(random.basis.as_ref());
    assert!(
        max_abs(diff.as_ref()) < 1e-8,
        "projectors differ by {}",
        max_abs(diff.as_ref())
    );
    let ptp = random.basis.transpose() * &random.basis;
    assert!(max_abs((ptp - Mat::<f64>::identity(5, 5)).as_ref()) < 1e-12);
    for (a, b) in exact.singular_values.iter().zip(&random.singular_values) {
        assert!((a - b).abs() < 1e-8 * a);
    }
    // The same signs, so the same maps.
    for (a, b) in exact.maps.iter().zip(&random.maps) {
        assert!(max_abs((a - b).as_ref()) < 1e-8 * max_abs(a.as_ref()));
    }
    // A larger d than the probes, to exercise the thin sketch, and the same seed twice.
    let g = group(3, 120, Some(4), 1e-3);
    let a = fit(&g, 4, 0);
    let b = fit(&g, 4, 0);
    assert_eq!(a.basis, b.basis);
    let e = fit(&g, 4, 3000);
    let diff = projector(a.basis.as_ref()) - projector(e.basis.as_ref());
    assert!(max_abs(diff.as_ref()) < 1e-8);
}

#[test]
fn the_fit_minimises_the_objective() {
    let g = group(4, 40, None, 0.0);
    let space = fit(&g, 5, 3000);
    let best = objective(&g, &space.maps, space.basis.as_ref());
    let mut rng = ChaCha8Rng::seed_from_u64(40);

    // Perturbed maps with P fixed.
    for eps in [1e-3, 1e-1] {
        let maps: Vec<Mat<f64>> = space
            .maps
            .iter()
            .map(|m| m + eps * randn(&mut rng, m.nrows(), m.ncols()))
            .collect();
        assert!(best < objective(&g, &maps, space.basis.as_ref()));
    }
    // Other orthonormal bases, each with its own best maps.
    let others = [
        orthonormal(randn(&mut rng, 40, 5)),
        orthonormal(&space.basis + 1e-2 * randn(&mut rng, 40, 5)),
    ];
    for p in &others {
        let maps: Vec<Mat<f64>> =
            g.x.iter()
                .zip(&g.y)
                .zip(&g.alphas)
                .map(|((x, y), &a)| fit_subject_map(x.as_ref(), y.as_ref(), p.as_ref(), a).unwrap())
                .collect();
        assert!(best < objective(&g, &maps, p.as_ref()));
    }
}

#[test]
fn a_new_subject_map_solves_its_normal_equations() {
    let g = group(5, 40, None, 0.0);
    let space = fit(&g, 5, 3000);
    // The group's own maps are the adaptation step applied to each subject.
    for ((m, (x, y)), &a) in space.maps.iter().zip(g.x.iter().zip(&g.y)).zip(&g.alphas) {
        let again = fit_subject_map(x.as_ref(), y.as_ref(), space.basis.as_ref(), a).unwrap();
        assert!(max_abs((m - &again).as_ref()) < 1e-10 * max_abs(m.as_ref()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(50);
    for (n, v) in [(18, 60), (50, 9)] {
        let x = centre(randn(&mut rng, n, v));
        let y = centre(randn(&mut rng, n, 40));
        let alpha = 2.5;
        let p = space.basis.as_ref();
        let m = fit_subject_map(x.as_ref(), y.as_ref(), p, alpha).unwrap();
        // Gradient of ‖Y − X M Pᵀ‖² + α‖M‖² is zero: (XᵀX + αI) M = Xᵀ Y P.
        let lhs = identity_plus(x.transpose() * &x, alpha) * &m;
        let rhs = x.transpose() * &y * p;
        assert!(max_abs((&lhs - &rhs).as_ref()) < 1e-10 * max_abs(rhs.as_ref()));
    }
}

/// GCV from the explicit hat matrix of ridge with an unpenalised intercept,
/// `H = 11ᵀ/n + X (XᵀX + αI)⁻¹ Xᵀ` (X and Y centred).
fn brute_gcv(x: &Mat<f64>, y: &Mat<f64>, alpha: f64) -> f64 {
    let (n, d) = (x.nrows() as f64, y.ncols() as f64);
    let inner = solve_spd(x.transpose() * x, alpha, x.transpose());
    let h = x * inner + Mat::<f64>::from_fn(x.nrows(), x.nrows(), |_, _| 1.0 / n);
    let trace: f64 = (0..h.nrows()).map(|i| h[(i, i)]).sum();
    let resid = y - &h * y;
    let per_target: f64 = (0..y.ncols())
        .map(|j| (0..y.nrows()).map(|i| resid[(i, j)].powi(2)).sum::<f64>() / n)
        .sum::<f64>()
        / d;
    per_target / (1.0 - trace / n).powi(2)
}

#[test]
fn gcv_picks_the_brute_force_minimum() {
    let mut rng = ChaCha8Rng::seed_from_u64(60);
    let grid: Vec<f64> = (0..16).map(|i| 10f64.powf(-3.0 + 0.5 * i as f64)).collect();
    for (n, v) in [(30, 80), (60, 20)] {
        // A few strong directions in X carry the signal, the rest is noise: the minimum lies
        // inside the grid rather than at interpolation.
        let s = randn(&mut rng, n, 4);
        let x = centre(&s * randn(&mut rng, 4, v) + 0.5 * randn(&mut rng, n, v));
        let y = centre(&s * randn(&mut rng, 4, 7) + randn(&mut rng, n, 7));
        let scores: Vec<f64> = grid.iter().map(|&a| brute_gcv(&x, &y, a)).collect();
        let mut best = 0;
        for i in 1..grid.len() {
            if scores[i] < scores[best] {
                best = i;
            }
        }
        assert!(
            best > 0 && best + 1 < grid.len(),
            "minimum inside the grid (n = {n}, v = {v}): {scores:?}"
        );
        let chosen = gcv_alpha(x.as_ref(), y.as_ref(), &grid).unwrap();
        assert_eq!(chosen, grid[best], "n = {n}, v = {v}");
    }
}

#[test]
fn planted_shared_structure_is_recovered() {
    let mut rng = ChaCha8Rng::seed_from_u64(70);
    let (r, d) = (4, 60);
    let b = randn(&mut rng, r, d);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for &(n, v) in &[(80, 50), (90, 120), (70, 40)] {
        let s = randn(&mut rng, n, r);
        let a = randn(&mut rng, r, v);
        x.push(centre(&s * &a + 0.3 * randn(&mut rng, n, v)));
        y.push(centre(&s * &b + 0.1 * randn(&mut rng, n, d)));
    }
    let g = Group {
        x,
        y,
        alphas: vec![10.0, 10.0, 10.0],
    };
    // Projector onto B's row space: Bᵀ (B Bᵀ)⁻¹ B.
    let target = b.transpose() * solve_spd(&b * b.transpose(), 0.0, b.as_ref());
    for exact_below in [3000, 0] {
        let space = fit(&g, r, exact_below);
        let diff = projector(space.basis.as_ref()) - &target;
        let err = diff.norm_l2() / target.norm_l2();
        assert!(err < 0.05, "relative projector error {err}");
    }
}

fn shape_error<T: std::fmt::Debug>(r: Result<T, AlignError>, words: &str) {
    match r {
        Err(AlignError::Shape(m)) => assert!(m.contains(words), "{m}"),
        other => panic!("expected a shape error with {words:?}, got {other:?}"),
    }
}

fn input_error<T: std::fmt::Debug>(r: Result<T, AlignError>, words: &str) {
    match r {
        Err(AlignError::Input(m)) => assert!(m.contains(words), "{m}"),
        other => panic!("expected an input error with {words:?}, got {other:?}"),
    }
}

#[test]
fn bad_shapes_and_values_are_errors() {
    let g = group(8, 40, None, 0.0);
    let opts = |k| SharedSpaceOptions {
        k,
        ..Default::default()
    };
    let (xs, ys) = (g.xs(), g.ys());

    let short = Mat::<f64>::zeros(19, 40);
    let bad_rows = [xs[0], xs[1], xs[2]];
    let bad_y = [short.as_ref(), ys[1], ys[2]];
    shape_error(
        fit_shared_space(&bad_rows, &bad_y, &g.alphas, &opts(3)),
        "subject 0: X has 20 rows, Y has 19",
    );
    let narrow = Mat::<f64>::zeros(25, 39);
    let bad_d = [ys[0], narrow.as_ref(), ys[2]];
    shape_error(
        fit_shared_space(&xs, &bad_d, &g.alphas, &opts(3)),
        "subject 1 has 39 targets",
    );
    shape_error(
        fit_shared_space(&xs, &ys, &g.alphas, &opts(41)),
        "more than the 40 targets",
    );
    // k ≤ d but more than all rows together.
    let wide: Vec<Mat<f64>> = g.x.iter().map(|x| Mat::zeros(x.nrows(), 100)).collect();
    let wide: Vec<MatRef<'_, f64>> = wide.iter().map(|m| m.as_ref()).collect();
    shape_error(
        fit_shared_space(&xs, &wide, &g.alphas, &opts(76)),
        "more than the 75 rows",
    );
    shape_error(
        fit_shared_space(&xs, &ys, &g.alphas[..2], &opts(3)),
        "alphas",
    );
    input_error(fit_shared_space(&xs, &ys, &g.alphas, &opts(0)), "k must be");
    input_error(fit_shared_space(&[], &[], &[], &opts(3)), "no subjects");
    input_error(
        fit_shared_space(&xs, &ys, &[1.0, 0.0, 1.0], &opts(3)),
        "alpha of subject 1",
    );
    let mut nan = g.x[2].clone();
    nan[(3, 4)] = f64::NAN;
    let bad_x = [xs[0], xs[1], nan.as_ref()];
    input_error(
        fit_shared_space(&bad_x, &ys, &g.alphas, &opts(3)),
        "X of subject 2 holds a non-finite value at row 3, column 4",
    );

    let p = Mat::<f64>::identity(40, 3);
    shape_error(
        fit_subject_map(xs[0], short.as_ref(), p.as_ref(), 1.0),
        "X has 20 rows, Y has 19",
    );
    shape_error(
        fit_subject_map(xs[1], narrow.as_ref(), p.as_ref(), 1.0),
        "the basis has 40 rows",
    );
    input_error(
        fit_subject_map(xs[0], ys[0], p.as_ref(), f64::INFINITY),
        "alpha",
    );

    input_error(gcv_alpha(xs[0], ys[0], &[]), "grid is empty");
    input_error(gcv_alpha(xs[0], ys[0], &[1.0, -1.0]), "grid");
    shape_error(
        gcv_alpha(xs[0], short.as_ref(), &[1.0]),
        "X has 20 rows, Y has 19",
    );
    input_error(gcv_alpha(nan.as_ref(), ys[2], &[1.0]), "non-finite");
}
