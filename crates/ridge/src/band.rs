//! Generalized cross-validation for wide designs (p > n) without an eigendecomposition.
//!
//! GCV (Golub, Heath & Wahba 1979) replaces each leave-one-out leverage `h_ii` by their mean,
//! so a target's score needs only its residual norm and `tr(I − H)`. Both are invariant under
//! an orthogonal change of basis, so the Gram matrix `K` (n×n) need not be diagonalized: it is
//! reduced to a band matrix `B = Q₁ᵀ K Q₁` (half-bandwidth `w`) by blocked Householder
//! transformations, whose work is all matrix products (an eigensolver's tridiagonal reduction
//! reads the whole trailing matrix once per column and is bound by memory bandwidth). Then,
//! per alpha, a banded Cholesky factorization (n·w²), banded solves (n·w per target) and the
//! band of the inverse (Takahashi's recurrence, n·w²) give
//!
//! ```text
//! ‖r(α)‖²      = α² ‖(B + αI)⁻¹ Q₁ᵀ y‖²
//! tr(I − H(α)) = α · tr((B + αI)⁻¹)   (minus 1 with an intercept: the mean is fitted too)
//! dual coef    = Q₁ (B + αI)⁻¹ Q₁ᵀ y
//! ```

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::qr::no_pivoting::factor::{qr_in_place, qr_in_place_scratch};
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::{Accum, Mat, MatMut, MatRef};

use crate::linalg::{mul, mul_add, par_map_cols_mut, Float};

/// Half-bandwidth of the reduction: wide enough for efficient matrix products in the
/// reduction, narrow enough that the per-alpha band work stays small next to it.
pub(crate) const BAND_WIDTH: usize = 64;

/// `K = Q₁ B Q₁ᵀ` with `B` banded and `Q₁` a product of block Householder transformations.
pub(crate) struct BandReduction<T: Float> {
    /// n×n. Lower triangle: the band of `B` (diagonal and `width` subdiagonals) and, below
    /// it, each panel's Householder vectors (unit diagonal implied) as faer's QR leaves them.
    storage: Mat<T>,
    width: usize,
    /// Per panel: its first column and `M` (r×r, upper triangular), `Q_panel = I − V M Vᵀ`.
    panels: Vec<(usize, Mat<T>)>,
}

/// The lower band of a symmetric matrix, row-major `n × (w+1)`: `values[i·(w+1) + d] = B[i, i−d]`.
#[derive(Debug, Clone)]
pub(crate) struct Band {
    pub n: usize,
    pub width: usize,
    pub values: Vec<f64>,
}

impl Band {
    fn at(&self, i: usize, d: usize) -> f64 {
        self.values[i * (self.width + 1) + d]
    }
}

fn par() -> faer::Par {
    faer::get_global_parallelism()
}

impl<T: Float> BandReduction<T> {
    /// Reduces the symmetric `k` (n×n; only its lower triangle is read) to half-bandwidth
    /// `width` (≥ 1).
    pub fn new(k: Mat<T>, width: usize) -> Self {
        assert_eq!(k.nrows(), k.ncols(), "band reduction needs a square matrix");
        assert!(width >= 1, "band width must be ≥ 1");
        let n = k.nrows();
        let mut storage = k;
        let mut panels = Vec::new();
        let mut start = 0;
        // rows r0.. of the panel's columns lie outside the band; with one row left it is in
        while start + width + 1 < n {
            let r0 = start + width;
            let m = n - r0;
            let reflectors = width.min(m);
            let mut coefficients = Mat::<T>::zeros(reflectors, reflectors);
            {
                let panel = storage.as_mut().submatrix_mut(r0, start, m, width);
                let params = Default::default();
                let mut buffer = MemBuffer::new(qr_in_place_scratch::<T>(
                    m,
                    width,
                    reflectors,
                    par(),
                    params,
                ));
                qr_in_place(
                    panel,
                    coefficients.as_mut(),
                    par(),
                    MemStack::new(&mut buffer),
                    params,
                );
            }
            let factor = inverse_upper(coefficients.as_ref());
            let v = householder_basis(storage.as_ref(), r0, start, reflectors);
            two_sided_update(
                storage.as_mut().submatrix_mut(r0, r0, m, m),
                v.as_ref(),
                factor.as_ref(),
            );
            panels.push((start, factor));
            start += width;
        }
        BandReduction {
            storage,
            width,
            panels,
        }
    }

    pub fn n(&self) -> usize {
        self.storage.nrows()
    }

    /// The band of `B` in f64.
    pub fn band(&self) -> Band {
        let (n, w) = (self.n(), self.width);
        let mut values = vec![0.0; n * (w + 1)];
        for i in 0..n {
            for d in 0..=w.min(i) {
                values[i * (w + 1) + d] = self.storage[(i, i - d)].f64();
            }
        }
        Band {
            n,
            width: w,
            values,
        }
    }

    /// `y ← Q₁ᵀ y` for `y` (n×c).
    pub fn apply_qt(&self, y: MatMut<'_, T>) {
        assert_eq!(y.nrows(), self.n(), "rows of the transformed matrix");
        self.apply_panels(y, true);
    }

    /// `y ← Q₁ y` for `y` (n×c).
    pub fn apply_q(&self, y: MatMut<'_, T>) {
        assert_eq!(y.nrows(), self.n(), "rows of the transformed matrix");
        self.apply_panels(y, false);
    }

    /// Every panel (in order for `Q₁ᵀ`, reversed for `Q₁`) applied to `COLUMN_BLOCK` columns
    /// of `y` at a time, each thread on its own columns: the block stays in cache while the
    /// Householder vectors stream past, where applying one panel to all of `y` would move `y`
    /// through memory once per panel (a rank-`w` update is bound by memory, not arithmetic).
    fn apply_panels(&self, y: MatMut<'_, T>, transposed: bool) {
        let tops: Vec<Mat<T>> = self
            .panels
            .iter()
            .map(|(start, factor)| {
                // the first r rows of the panel's basis: those of the storage end there
                let (r0, r) = (start + self.width, factor.nrows());
                householder_basis(self.storage.as_ref().subrows(0, r0 + r), r0, *start, r)
            })
            .collect();
        par_map_cols_mut(y, |mut part, _| {
            let c = part.ncols();
            for first in (0..c).step_by(COLUMN_BLOCK) {
                let mut block = part
                    .as_mut()
                    .subcols_mut(first, COLUMN_BLOCK.min(c - first));
                let mut apply = |k: usize| {
                    let (start, factor) = &self.panels[k];
                    let factor = if transposed {
                        factor.transpose()
                    } else {
                        factor.as_ref()
                    };
                    self.apply_panel(*start, tops[k].as_ref(), factor, block.as_mut());
                };
                if transposed {
                    (0..self.panels.len()).for_each(&mut apply);
                } else {
                    (0..self.panels.len()).rev().for_each(&mut apply);
                }
            }
        });
    }

    /// `y[r0..] ← (I − V F Vᵀ) y[r0..]` for one panel, `F` = `M` or `Mᵀ`, single-threaded.
    /// `V` is read in place: its unit lower triangular top (`top`, r×r) and the
    /// reflectors' rows below it in the storage.
    fn apply_panel(
        &self,
        start: usize,
        top: MatRef<'_, T>,
        factor: MatRef<'_, T>,
        y: MatMut<'_, T>,
    ) {
        let r0 = start + self.width;
        let (m, r, c) = (self.n() - r0, top.nrows(), y.ncols());
        let below = self.storage.as_ref().submatrix(r0 + r, start, m - r, r);
        let (mut head, mut rest) = y.subrows_mut(r0, m).split_at_row_mut(r);
        let mut projected = Mat::<T>::zeros(r, c);
        mul_seq(
            projected.as_mut(),
            Accum::Replace,
            top.transpose(),
            head.as_ref(),
            1.0,
        );
        mul_seq(
            projected.as_mut(),
            Accum::Add,
            below.transpose(),
            rest.as_ref(),
            1.0,
        );
        let mut scaled = Mat::<T>::zeros(r, c);
        mul_seq(
            scaled.as_mut(),
            Accum::Replace,
            factor,
            projected.as_ref(),
            1.0,
        );
        mul_seq(head.as_mut(), Accum::Add, top, scaled.as_ref(), -1.0);
        mul_seq(rest.as_mut(), Accum::Add, below, scaled.as_ref(), -1.0);
    }
}

/// `out (+)= scale · lhs · rhs` on the calling thread.
fn mul_seq<T: Float>(
    out: MatMut<'_, T>,
    accum: Accum,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    scale: f64,
) {
    matmul(out, accum, lhs, rhs, T::of(scale), faer::Par::Seq);
}

/// Columns of `y` that [`BandReduction::apply_qt`] carries through all panels together (n×256
/// float32 is 9 MB for n = 8859: two threads' blocks fit a 32 MB cache).
const COLUMN_BLOCK: usize = 256;

/// The explicit Householder basis `V` (m×r) of the panel whose essentials start at
/// `storage[r0, start]`: unit diagonal, zeros above.
fn householder_basis<T: Float>(
    storage: MatRef<'_, T>,
    r0: usize,
    start: usize,
    reflectors: usize,
) -> Mat<T> {
    let m = storage.nrows() - r0;
    Mat::from_fn(m, reflectors, |i, j| match i.cmp(&j) {
        std::cmp::Ordering::Less => T::of(0.0),
        std::cmp::Ordering::Equal => T::of(1.0),
        std::cmp::Ordering::Greater => storage[(r0 + i, start + j)],
    })
}

/// `T⁻¹` of faer's upper triangular Householder factor (`H₀⋯H_{r−1} = I − V T⁻¹ Vᵀ`). A
/// non-finite diagonal entry marks a reflector that is the identity (a zero column): its row
/// and column of the inverse are zero.
fn inverse_upper<T: Float>(t: MatRef<'_, T>) -> Mat<T> {
    let r = t.nrows();
    let mut inverse = Mat::<T>::zeros(r, r);
    let finite = |i: usize| t[(i, i)].f64().is_finite() && t[(i, i)].f64() != 0.0;
    for j in 0..r {
        if !finite(j) {
            continue;
        }
        inverse[(j, j)] = T::of(1.0 / t[(j, j)].f64());
        for i in (0..j).rev() {
            if !finite(i) {
                continue;
            }
            let mut sum = 0.0;
            for l in i + 1..=j {
                let m = inverse[(l, j)].f64();
                if m != 0.0 {
                    sum += t[(i, l)].f64() * m;
                }
            }
            inverse[(i, j)] = T::of(-sum / t[(i, i)].f64());
        }
    }
    inverse
}

/// `A ← Qᵀ A Q` on the lower triangle of the symmetric `a` (m×m), `Q = I − V M Vᵀ`:
/// `X = A V M`, `W = X − ½ V (Mᵀ Vᵀ X)`, `A ← A − V Wᵀ − W Vᵀ`.
fn two_sided_update<T: Float>(mut a: MatMut<'_, T>, v: MatRef<'_, T>, factor: MatRef<'_, T>) {
    let (m, r) = (v.nrows(), v.ncols());
    let one = T::of(1.0);
    // A V from the lower triangle: tril(A)·V + strict_tril(A)ᵀ·V
    let mut av = Mat::<T>::zeros(m, r);
    triangular::matmul(
        av.as_mut(),
        BlockStructure::Rectangular,
        Accum::Replace,
        a.as_ref(),
        BlockStructure::TriangularLower,
        v,
        BlockStructure::Rectangular,
        one,
        par(),
    );
    triangular::matmul(
        av.as_mut(),
        BlockStructure::Rectangular,
        Accum::Add,
        a.as_ref().transpose(),
        BlockStructure::StrictTriangularUpper,
        v,
        BlockStructure::Rectangular,
        one,
        par(),
    );
    let x = mul(av.as_ref(), factor);
    let inner = mul(factor.transpose(), mul(v.transpose(), x.as_ref()).as_ref());
    let mut w = x;
    mul_add(w.as_mut(), v, inner.as_ref(), T::of(-0.5));
    // lower(A) −= [V W]·[W V]ᵀ
    let left = Mat::from_fn(
        m,
        2 * r,
        |i, j| if j < r { v[(i, j)] } else { w[(i, j - r)] },
    );
    let right = Mat::from_fn(
        m,
        2 * r,
        |i, j| if j < r { w[(i, j)] } else { v[(i, j - r)] },
    );
    triangular::matmul(
        a.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Add,
        left.as_ref(),
        BlockStructure::Rectangular,
        right.as_ref().transpose(),
        BlockStructure::Rectangular,
        T::of(-1.0),
        par(),
    );
}

/// The reflection `P = I − 2uuᵀ` (symmetric, its own inverse) that maps the unit constant
/// vector `1/√n` to `e₀`.
///
/// With an intercept the Gram matrix of the centered design has the constant vector in its
/// null space. Its eigenvalue, exactly 0, contributes exactly `α/(0+α) = 1` to
/// `α tr((K + αI)⁻¹)`, which the intercept's own leverage cancels; but in float32 the rounding
/// of `K` moves it by ~1e-7·‖K‖, which for a small alpha makes that one term, and with it the
/// GCV denominator, meaningless. Rotating the constant direction to `e₀` and dropping it leaves
/// an (n−1)×(n−1) problem whose trace needs no correction.
pub(crate) struct ConstantReflection {
    u: Vec<f64>,
}

impl ConstantReflection {
    pub fn new(n: usize) -> Self {
        assert!(n >= 2, "the constant reflection needs n ≥ 2");
        let entry = 1.0 / (n as f64).sqrt();
        let norm = (2.0 - 2.0 * entry).sqrt();
        let mut u = vec![entry / norm; n];
        u[0] = (entry - 1.0) / norm;
        ConstantReflection { u }
    }

    /// `P K P` without its first row and column ((n−1)×(n−1); lower triangle read and written).
    pub fn deflate<T: Float>(&self, k: Mat<T>) -> Mat<T> {
        let n = self.u.len();
        assert_eq!((k.nrows(), k.ncols()), (n, n), "Gram matrix size");
        let u = &self.u;
        // w = K u from the lower triangle
        let mut w = vec![0.0; n];
        for j in 0..n {
            let column = k.col(j);
            let mut below = 0.0;
            w[j] += column[j].f64() * u[j];
            for i in j + 1..n {
                let value = column[i].f64();
                w[i] += value * u[j];
                below += value * u[i];
            }
            w[j] += below;
        }
        let c: f64 = u.iter().zip(&w).map(|(a, b)| a * b).sum();
        // P K P = K − u zᵀ − z uᵀ with z = 2w − 2c·u
        let z: Vec<f64> = w
            .iter()
            .zip(u)
            .map(|(wi, ui)| 2.0 * wi - 2.0 * c * ui)
            .collect();
        Mat::from_fn(n - 1, n - 1, |i, j| {
            if i < j {
                return T::of(0.0);
            }
            let (a, b) = (i + 1, j + 1);
            T::of(k[(a, b)].f64() - u[a] * z[b] - z[a] * u[b])
        })
    }

    /// `y ← P y` for `y` (n×c).
    pub fn apply<T: Float>(&self, mut y: MatMut<'_, T>) {
        assert_eq!(y.nrows(), self.u.len(), "rows of the reflected matrix");
        for j in 0..y.ncols() {
            let mut column = y.as_mut().col_mut(j);
            let dot: f64 = (0..self.u.len()).map(|i| column[i].f64() * self.u[i]).sum();
            for (i, &ui) in self.u.iter().enumerate() {
                column[i] = T::of(column[i].f64() - 2.0 * dot * ui);
            }
        }
    }
}

/// Cholesky factor of `B + shift·I` for a banded `B`, row-major like [`Band`]:
/// `l[i·(w+1) + d] = L[i, i−d]`.
pub(crate) struct BandCholesky {
    n: usize,
    width: usize,
    l: Vec<f64>,
}

impl BandCholesky {
    /// `None` when `B + shift·I` is not numerically positive definite.
    pub fn factor(band: &Band, shift: f64) -> Option<Self> {
        let (n, w) = (band.n, band.width);
        let stride = w + 1;
        let mut l = vec![0.0; n * stride];
        for i in 0..n {
            let first = i.saturating_sub(w);
            for j in first..i {
                let mut sum = band.at(i, i - j);
                for k in first.max(j.saturating_sub(w))..j {
                    sum -= l[i * stride + (i - k)] * l[j * stride + (j - k)];
                }
                l[i * stride + (i - j)] = sum / l[j * stride];
            }
            let mut diagonal = band.at(i, 0) + shift;
            for k in first..i {
                diagonal -= l[i * stride + (i - k)].powi(2);
            }
            if !(diagonal > 0.0 && diagonal.is_finite()) {
                return None;
            }
            l[i * stride] = diagonal.sqrt();
        }
        Some(BandCholesky { n, width: w, l })
    }

    fn at(&self, i: usize, d: usize) -> f64 {
        self.l[i * (self.width + 1) + d]
    }

    /// Solves `(B + shift·I) S = R` in place; `rows` is row-major `n × c` (one row at a
    /// time: the reference for [`BlockedBandCholesky::solve`]).
    #[cfg(test)]
    pub fn solve_rows(&self, rows: &mut [f64], c: usize) {
        let (n, w) = (self.n, self.width);
        assert_eq!(rows.len(), n * c, "right-hand side is n×c");
        for i in 0..n {
            let (done, rest) = rows.split_at_mut(i * c);
            let row = &mut rest[..c];
            for d in 1..=w.min(i) {
                let coefficient = self.at(i, d);
                let previous = &done[(i - d) * c..(i - d + 1) * c];
                for (value, p) in row.iter_mut().zip(previous) {
                    *value -= coefficient * p;
                }
            }
            let inverse = 1.0 / self.at(i, 0);
            row.iter_mut().for_each(|value| *value *= inverse);
        }
        for i in (0..n).rev() {
            let (head, later) = rows.split_at_mut((i + 1) * c);
            let row = &mut head[i * c..];
            for d in 1..=w.min(n - 1 - i) {
                let coefficient = self.at(i + d, d);
                let next = &later[(d - 1) * c..d * c];
                for (value, s) in row.iter_mut().zip(next) {
                    *value -= coefficient * s;
                }
            }
            let inverse = 1.0 / self.at(i, 0);
            row.iter_mut().for_each(|value| *value *= inverse);
        }
    }

    /// `tr((B + shift·I)⁻¹)` from the band of the inverse `Z` (Takahashi's recurrence on
    /// `Lᵀ Z = L⁻¹`, from the last row up: only entries within the band are needed).
    pub fn inverse_trace(&self) -> f64 {
        let (n, w) = (self.n, self.width);
        let stride = w + 1;
        // z[i·(w+1) + d] = Z[i+d, i]
        let mut z = vec![0.0; n * stride];
        let get = |z: &[f64], a: usize, b: usize| {
            let (low, high) = if a < b { (a, b) } else { (b, a) };
            z[low * stride + (high - low)]
        };
        let mut trace = 0.0;
        for i in (0..n).rev() {
            let last = (i + w).min(n - 1);
            let pivot = self.at(i, 0);
            for j in (i + 1..=last).rev() {
                let mut sum = 0.0;
                for k in i + 1..=last {
                    sum += self.at(k, k - i) * get(&z, k, j);
                }
                z[i * stride + (j - i)] = -sum / pivot;
            }
            let mut sum = 0.0;
            for k in i + 1..=last {
                sum += self.at(k, k - i) * z[i * stride + (k - i)];
            }
            let diagonal = (1.0 / pivot - sum) / pivot;
            z[i * stride] = diagonal;
            trace += diagonal;
        }
        trace
    }
}

/// [`BandCholesky`] as dense blocks of `w` rows, to solve for many right-hand sides with one
/// matrix product per block instead of one row at a time. Block row `b` of `L` holds a lower
/// triangular diagonal block `D_b` and, to its left, `E_b` (rows of block `b`, columns of
/// block `b − 1`; `L[i, j] ≠ 0` only for `0 ≤ i − j ≤ w`). Forward and back substitution
/// are then, with the rows of consecutive blocks stacked,
///
/// ```text
/// z_b = D_b⁻¹ (r_b − E_b z_{b−1})       = [−D_b⁻¹E_b | D_b⁻¹] · [z_{b−1}; r_b]
/// s_b = D_b⁻ᵀ (z_b − E_{b+1}ᵀ s_{b+1})  = [D_b⁻ᵀ | −D_b⁻ᵀE_{b+1}ᵀ] · [z_b; s_{b+1}]
/// ```
///
/// (a third more flops than substitution, all in one product of inner size 2w; `D_b` is a
/// diagonal block of a Cholesky factor, so its inverse is as well conditioned as `D_b`).
pub(crate) struct BlockedBandCholesky {
    n: usize,
    block: usize,
    /// Per block: `[−D_b⁻¹E_b | D_b⁻¹]` (len_b × (w + len_b); without `E` for `b = 0`).
    forward: Vec<Mat<f64>>,
    /// Per block: `[D_b⁻ᵀ | −D_b⁻ᵀE_{b+1}ᵀ]` (len_b × (len_b + len_{b+1}); without `E` last).
    backward: Vec<Mat<f64>>,
}

impl BlockedBandCholesky {
    pub fn new(factor: &BandCholesky) -> Self {
        let (n, w) = (factor.n, factor.width);
        let starts: Vec<usize> = (0..n).step_by(w).collect();
        let inverses: Vec<Mat<f64>> = starts
            .iter()
            .map(|&s| {
                let len = w.min(n - s);
                let d = Mat::from_fn(
                    len,
                    len,
                    |r, c| {
                        if c <= r {
                            factor.at(s + r, r - c)
                        } else {
                            0.0
                        }
                    },
                );
                let mut inverse = Mat::<f64>::identity(len, len);
                solve_lower_triangular_in_place(d.as_ref(), inverse.as_mut(), faer::Par::Seq);
                inverse
            })
            .collect();
        // E_b for b ≥ 1: column c is row s − w + c, at distance w + r − c ≤ w only for c ≥ r
        let left = |b: usize| {
            let s = starts[b];
            Mat::from_fn(w.min(n - s), w, |r, c| {
                if c >= r {
                    factor.at(s + r, w + r - c)
                } else {
                    0.0
                }
            })
        };
        let forward = (0..starts.len())
            .map(|b| {
                let inverse = &inverses[b];
                if b == 0 {
                    return inverse.clone();
                }
                let coupling = mul(inverse.as_ref(), left(b).as_ref());
                let len = inverse.nrows();
                Mat::from_fn(len, w + len, |r, c| {
                    if c < w {
                        -coupling[(r, c)]
                    } else {
                        inverse[(r, c - w)]
                    }
                })
            })
            .collect();
        let backward = (0..starts.len())
            .map(|b| {
                let inverse_t = inverses[b].transpose().to_owned();
                if b + 1 == starts.len() {
                    return inverse_t;
                }
                // −D_b⁻ᵀ E_{b+1}ᵀ = −(E_{b+1} D_b⁻¹)ᵀ
                let coupling = mul(left(b + 1).as_ref(), inverses[b].as_ref());
                let (len, next) = (inverse_t.nrows(), coupling.nrows());
                Mat::from_fn(len, len + next, |r, c| {
                    if c < len {
                        inverse_t[(r, c)]
                    } else {
                        -coupling[(c - len, r)]
                    }
                })
            })
            .collect();
        BlockedBandCholesky {
            n,
            block: w,
            forward,
            backward,
        }
    }

    /// Solves `(B + shift·I) S = R` in place; `r` is n×c. Single-threaded: callers split the
    /// columns over threads.
    pub fn solve(&self, mut r: MatMut<'_, f64>) {
        assert_eq!(r.nrows(), self.n, "right-hand side has n rows");
        let w = self.block;
        let mut block = Mat::<f64>::zeros(w, r.ncols());
        for (b, operator) in self.forward.iter().enumerate() {
            let (start, len) = (b * w, operator.nrows());
            let first = start - (operator.ncols() - len);
            self.apply(operator, &mut block, r.as_mut(), first, start);
        }
        for (b, operator) in self.backward.iter().enumerate().rev() {
            self.apply(operator, &mut block, r.as_mut(), b * w, b * w);
        }
    }

    /// `r[start.., :] = operator · r[first.., :]` (operator: len × k).
    fn apply(
        &self,
        operator: &Mat<f64>,
        block: &mut Mat<f64>,
        r: MatMut<'_, f64>,
        first: usize,
        start: usize,
    ) {
        let (len, k) = (operator.nrows(), operator.ncols());
        let mut out = block.as_mut().subrows_mut(0, len);
        let operand = r.as_ref().subrows(first, k);
        matmul(
            out.as_mut(),
            Accum::Replace,
            operator.as_ref(),
            operand,
            1.0,
            faer::Par::Seq,
        );
        r.subrows_mut(start, len).copy_from(out.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::linalg::solvers::DenseSolveCore;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_gram(n: usize, p: usize, seed: u64) -> Mat<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Mat::from_fn(n, p, |_, _| rng.gen_range(-1.0..1.0));
        mul(x.as_ref(), x.transpose())
    }

    fn dense(band: &Band) -> Mat<f64> {
        Mat::from_fn(band.n, band.n, |i, j| {
            let (hi, lo) = if i >= j { (i, j) } else { (j, i) };
            if hi - lo <= band.width {
                band.at(hi, hi - lo)
            } else {
                0.0
            }
        })
    }

    fn max_abs(m: MatRef<'_, f64>) -> f64 {
        let mut out = 0f64;
        for j in 0..m.ncols() {
            for i in 0..m.nrows() {
                out = out.max(m[(i, j)].abs());
            }
        }
        out
    }

    #[test]
    fn reduction_is_an_orthogonal_similarity() {
        // several panels, a ragged last one, and the upper triangle of K ignored
        for (n, width) in [(37, 4), (50, 7), (12, 16), (64, 8)] {
            let k = random_gram(n, n + 5, n as u64);
            let mut lower_only = k.clone();
            for j in 0..n {
                for i in 0..j {
                    lower_only[(i, j)] = f64::NAN;
                }
            }
            let reduction = BandReduction::new(lower_only, width);
            let b = dense(&reduction.band());
            // K = Q B Qᵀ: apply Q to B's columns, then to the rows of the result
            let mut qb = b.clone();
            reduction.apply_q(qb.as_mut());
            let mut qbqt = qb.transpose().to_owned();
            reduction.apply_q(qbqt.as_mut());
            let err = max_abs((&qbqt - &k).as_ref()) / max_abs(k.as_ref());
            assert!(err < 1e-12, "n={n} w={width}: K − Q B Qᵀ = {err:e}");
            // Qᵀ undoes Q
            let mut round = b.clone();
            reduction.apply_q(round.as_mut());
            reduction.apply_qt(round.as_mut());
            let err = max_abs((&round - &b).as_ref()) / max_abs(b.as_ref());
            assert!(err < 1e-12, "n={n} w={width}: QᵀQ ≠ I ({err:e})");
        }
    }

    #[test]
    fn many_columns_are_transformed_like_the_explicit_q() {
        // more columns than one block per thread: blocks and threads must not change a column
        let (n, width, c) = (41, 5, 3 * COLUMN_BLOCK + 17);
        let reduction = BandReduction::new(random_gram(n, 50, 3), width);
        let mut q = Mat::<f64>::identity(n, n);
        reduction.apply_q(q.as_mut());
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let y = Mat::from_fn(n, c, |_, _| rng.gen_range(-1.0..1.0));
        let (mut qy, mut qty) = (y.clone(), y.clone());
        reduction.apply_q(qy.as_mut());
        reduction.apply_qt(qty.as_mut());
        let scale = max_abs(y.as_ref());
        let err_q = max_abs((&qy - mul(q.as_ref(), y.as_ref())).as_ref()) / scale;
        let err_qt = max_abs((&qty - mul(q.transpose(), y.as_ref())).as_ref()) / scale;
        assert!(
            err_q < 1e-12 && err_qt < 1e-12,
            "Q y {err_q:e}, Qᵀ y {err_qt:e}"
        );
    }

    #[test]
    fn banded_cholesky_solves_and_inverse_trace_match_dense() {
        let (n, width) = (45, 6);
        let reduction = BandReduction::new(random_gram(n, 30, 7), width); // rank 30: singular K
        let band = reduction.band();
        for shift in [1e-3, 0.5, 40.0] {
            let chol = BandCholesky::factor(&band, shift).expect("positive definite");
            let shifted = Mat::from_fn(n, n, |i, j| {
                dense(&band)[(i, j)] + if i == j { shift } else { 0.0 }
            });
            let inverse = shifted.as_ref().partial_piv_lu().inverse();
            let trace: f64 = (0..n).map(|i| inverse[(i, i)]).sum();
            let rel = (chol.inverse_trace() - trace).abs() / trace;
            assert!(
                rel < 1e-10,
                "shift {shift}: trace {} vs {trace}",
                chol.inverse_trace()
            );

            let c = 5;
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let rhs = Mat::from_fn(n, c, |_, _| rng.gen_range(-1.0..1.0));
            let mut rows: Vec<f64> = (0..n)
                .flat_map(|i| (0..c).map(move |j| (i, j)))
                .map(|(i, j)| rhs[(i, j)])
                .collect();
            chol.solve_rows(&mut rows, c);
            let solved = Mat::from_fn(n, c, |i, j| rows[i * c + j]);
            let expected = mul(inverse.as_ref(), rhs.as_ref());
            let err = max_abs((&solved - &expected).as_ref()) / max_abs(expected.as_ref());
            assert!(err < 1e-9, "shift {shift}: solve off by {err:e}");

            // the blocked solve (blocks of `width` rows, the last one short: 45 = 7·6 + 3)
            let mut blocked = rhs.clone();
            BlockedBandCholesky::new(&chol).solve(blocked.as_mut());
            let err = max_abs((&blocked - &expected).as_ref()) / max_abs(expected.as_ref());
            assert!(err < 1e-9, "shift {shift}: blocked solve off by {err:e}");
        }
    }

    /// Timing aid: `cargo test --release -p brainrecon-ridge blocked_solve_rate -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore]
    fn blocked_solve_rate() {
        let (n, width, c) = (8859, 64, 1024);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let band = Band {
            n,
            width,
            values: (0..n * (width + 1))
                .map(|k| {
                    if k % (width + 1) == 0 {
                        100.0
                    } else {
                        rng.gen_range(-0.5..0.5)
                    }
                })
                .collect(),
        };
        let chol = BandCholesky::factor(&band, 1.0).expect("diagonally dominant");
        let blocked = BlockedBandCholesky::new(&chol);
        let mut rhs = Mat::from_fn(n, c, |_, _| rng.gen_range(-1.0..1.0));
        let start = std::time::Instant::now();
        blocked.solve(rhs.as_mut());
        let seconds = start.elapsed().as_secs_f64();
        let flops = 6.0 * n as f64 * width as f64 * c as f64;
        eprintln!(
            "blocked: {seconds:.3} s, {:.1} GFLOP/s",
            flops / seconds / 1e9
        );
        let mut rows: Vec<f64> = (0..n * c).map(|k| rhs[(k / c, k % c)]).collect();
        let start = std::time::Instant::now();
        chol.solve_rows(&mut rows, c);
        let seconds = start.elapsed().as_secs_f64();
        eprintln!(
            "row at a time: {seconds:.3} s, {:.1} GFLOP/s",
            flops / seconds / 1e9
        );
    }

    #[test]
    fn the_constant_reflection_deflates_a_centered_gram_matrix() {
        let (n, p) = (23, 40);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x = Mat::from_fn(n, p, |_, _| rng.gen_range(-1.0..1.0));
        let means: Vec<f64> = (0..p)
            .map(|j| (0..n).map(|i| x[(i, j)]).sum::<f64>() / n as f64)
            .collect();
        let centered = Mat::from_fn(n, p, |i, j| x[(i, j)] - means[j]);
        let k = mul(centered.as_ref(), centered.transpose());
        let reflection = ConstantReflection::new(n);
        // P maps the constant to e₀ and is its own inverse
        let mut ones = Mat::from_fn(n, 1, |_, _| 1.0 / (n as f64).sqrt());
        reflection.apply(ones.as_mut());
        assert!((ones[(0, 0)] - 1.0).abs() < 1e-12 && (1..n).all(|i| ones[(i, 0)].abs() < 1e-12));
        // P K P, formed densely, has a zero first row, and the rest is what deflate returns
        let mut pk = k.clone();
        reflection.apply(pk.as_mut());
        let mut pkp = pk.transpose().to_owned();
        reflection.apply(pkp.as_mut());
        let deflated = reflection.deflate(k.clone());
        let scale = max_abs(k.as_ref());
        for i in 0..n {
            assert!(
                pkp[(i, 0)].abs() < 1e-12 * scale,
                "row {i} of the constant direction"
            );
        }
        for j in 0..n - 1 {
            for i in j..n - 1 {
                assert!((deflated[(i, j)] - pkp[(i + 1, j + 1)]).abs() < 1e-12 * scale);
            }
        }
    }

    #[test]
    fn an_indefinite_shifted_band_is_refused() {
        let band = Band {
            n: 2,
            width: 1,
            values: vec![1.0, 0.0, 1.0, 2.0], // [[1, 2], [2, 1]]: eigenvalues 3 and −1
        };
        assert!(BandCholesky::factor(&band, 0.5).is_none());
        assert!(BandCholesky::factor(&band, 1.5).is_some());
    }
}
