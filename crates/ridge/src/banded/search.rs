//! The cross-validated random search: every candidate γ, fold, alpha and target.
//!
//! Per fold, the products that do not depend on γ are formed once: the train-centered
//! covariance `G = X_trᵀX_tr` (p×p) and cross-products `C = X_trᵀY_tr` (p×t) in the primal
//! view, the per-band kernels in the dual view. Per candidate γ (scales `d = √γ_b` per column)
//! the fold needs one eigendecomposition, `D G D = V S Vᵀ` (primal; dual: `Σ γ_b K_b = Q S Qᵀ`),
//! which gives every alpha's held-out predictions as
//!
//! ```text
//! Ŷ(α) = E diag(1/(s+α)) P C      E = X_te D V (n_te×r), P = (D V)ᵀ (r×p)
//! ```
//!
//! (dual: `E = K_te Q`, `P = Qᵀ`, `C = Y_tr`). With many targets (t > n_alphas·n_te) each
//! alpha's resolvent `E diag(·) P` (n_te×p) is formed once and applied to every target chunk;
//! otherwise each chunk is projected once (`A = P C`, r×c) and `E diag(·) A` is formed per
//! alpha. Either way one f32 GEMM per alpha and chunk, scored against the held-out targets in
//! one fused pass (no per-target loop over n×n work).

use std::ops::Range;

use faer::{Mat, MatRef};

use super::design::{
    cross32, gram_of_columns, gram_of_rows, mul64, scale_both_sides, take_rows, weighted_sum,
    Design,
};
use crate::error::Result;
use crate::fit::trace;
use crate::linalg::{eigh_psd, mul_into, par_map_ranges, to_f32};
use crate::preprocess::target_chunk;
use crate::select::{select_himalaya, Scoring};
use crate::spectral::Solver;

/// himalaya accepts a later candidate only if it beats the best score by the machine epsilon
/// of the input dtype (float32 here).
const UPDATE_EPSILON: f64 = f32::EPSILON as f64;

/// The search's fixed inputs.
pub(crate) struct Search<'a> {
    pub design: &'a Design,
    /// n×t raw targets and their centering (t; zeros without intercept).
    pub y: MatRef<'a, f32>,
    pub y_mean: &'a [f64],
    pub fit_intercept: bool,
    /// Fold id of each sample and the number of folds.
    pub folds: &'a [usize],
    pub n_folds: usize,
    pub candidates: &'a [Vec<f64>],
    pub alphas: &'a [f64],
    pub scoring: Scoring,
    pub chunk: usize,
    pub solver: Solver,
}

/// Products of the full data shared by the folds and the refit.
pub(crate) struct Shared {
    /// Primal: `XᵀX` (p×p).
    pub gram: Mat<f64>,
    /// Primal: `Xᵀ Y_c` (p×t).
    pub cross: Mat<f32>,
    /// Dual: `X_b X_bᵀ` per band (n×n each).
    pub kernels: Vec<Mat<f64>>,
}

impl Search<'_> {
    /// Target chunks (column ranges of Y).
    pub fn chunks(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        let t = self.y.ncols();
        (0..t)
            .step_by(self.chunk)
            .map(move |s| s..(s + self.chunk).min(t))
    }

    /// Columns `range` of Y minus their full-data mean (n×c).
    pub fn centered(&self, range: Range<usize>) -> Mat<f32> {
        // reads row-major Y (a C-order .npy) in bands of rows
        target_chunk(self.y, range.clone(), &self.y_mean[range])
    }

    pub fn shared(&self) -> Shared {
        let x = self.design.x.as_ref();
        match self.solver {
            Solver::Primal => {
                let mut cross = Mat::<f32>::zeros(x.ncols(), self.y.ncols());
                for range in self.chunks() {
                    let y_c = self.centered(range.clone());
                    mul_into(
                        cross.as_mut().subcols_mut(range.start, range.len()),
                        x.transpose(),
                        y_c.as_ref(),
                    );
                }
                Shared {
                    gram: gram_of_columns(x),
                    cross,
                    kernels: Vec::new(),
                }
            }
            Solver::Dual => Shared {
                gram: Mat::zeros(0, 0),
                cross: Mat::zeros(0, 0),
                kernels: self
                    .design
                    .band_ranges()
                    .into_iter()
                    .map(|r| gram_of_rows(x.subcols(r.start, r.len())))
                    .collect(),
            },
        }
    }

    /// Mean CV scores over folds, per candidate: `scores[g]` is n_alphas×t.
    pub fn scores(&self, shared: &Shared) -> Result<Vec<Mat<f64>>> {
        let t = self.y.ncols();
        let mut scores = vec![Mat::<f64>::zeros(self.alphas.len(), t); self.candidates.len()];
        for fold in 0..self.n_folds {
            let data = Fold::new(self, shared, fold);
            trace("banded: fold products");
            for (g, gamma) in self.candidates.iter().enumerate() {
                let spectrum = data.spectrum(self, shared, gamma)?;
                if self.resolvents_are_cheaper(&spectrum) {
                    self.score_by_resolvents(&data, &spectrum, &mut scores[g]);
                } else {
                    for range in self.chunks() {
                        self.score_chunk(&data, &spectrum, range, &mut scores[g]);
                    }
                }
            }
            trace("banded: fold scores");
        }
        Ok(scores)
    }

    /// Whether forming each alpha's resolvent `R(α) = eval_basis · diag(1/(s+α)) · projector`
    /// (n_te×m, once for all targets) costs less than projecting every target chunk first
    /// (`A = projector · source`, r×t) and applying `eval_basis · diag(·)` per alpha.
    fn resolvents_are_cheaper(&self, spectrum: &Spectrum) -> bool {
        let (n_test, r) = spectrum.eval_basis.shape();
        let (m, t, l) = (
            spectrum.projector.ncols(),
            self.y.ncols(),
            self.alphas.len(),
        );
        let by_resolvent = l * n_test * m * (r + t);
        let by_projection = r * t * (m + l * n_test);
        by_resolvent < by_projection
    }

    /// Scores with one resolvent per alpha: `Ŷ(α) = R(α) · source` per target chunk.
    fn score_by_resolvents(&self, fold: &Fold, spectrum: &Spectrum, out: &mut Mat<f64>) {
        let (r, m) = spectrum.projector.shape();
        let mut scaled = Mat::<f32>::zeros(r, m);
        let mut resolvent = Mat::<f32>::zeros(fold.test.len(), m);
        for (k, &alpha) in self.alphas.iter().enumerate() {
            let gains = spectrum.gains(alpha);
            for j in 0..m {
                let (source, mut target) = (spectrum.projector.col(j), scaled.col_mut(j));
                for (i, &gain) in gains.iter().enumerate() {
                    target[i] = source[i] * gain;
                }
            }
            mul_into(
                resolvent.as_mut(),
                spectrum.eval_basis.as_ref(),
                scaled.as_ref(),
            );
            for range in self.chunks() {
                let mut pred = Mat::<f32>::zeros(fold.test.len(), range.len());
                let source = fold.source.subcols(range.start, range.len());
                mul_into(pred.as_mut(), resolvent.as_ref(), source);
                let truth = fold.y_test.subcols(range.start, range.len());
                let sst = &fold.sst[range.clone()];
                let fold_scores = score_columns(pred.as_ref(), truth, sst, self.scoring);
                for (j, s) in fold_scores.into_iter().enumerate() {
                    out[(k, range.start + j)] += s / self.n_folds as f64;
                }
            }
        }
    }

    /// Adds `score / n_folds` for every alpha and target of `range` into `out` (n_alphas×t),
    /// projecting the chunk onto the spectrum first.
    fn score_chunk(
        &self,
        fold: &Fold,
        spectrum: &Spectrum,
        range: Range<usize>,
        out: &mut Mat<f64>,
    ) {
        let source = fold.source.subcols(range.start, range.len());
        let mut projected = Mat::<f32>::zeros(spectrum.projector.nrows(), range.len());
        mul_into(projected.as_mut(), spectrum.projector.as_ref(), source);
        let mut shrunk = Mat::<f32>::zeros(projected.nrows(), range.len());
        let mut pred = Mat::<f32>::zeros(fold.test.len(), range.len());
        let truth = fold.y_test.subcols(range.start, range.len());
        let sst = &fold.sst[range.clone()];
        for (k, &alpha) in self.alphas.iter().enumerate() {
            let gains = spectrum.gains(alpha);
            for j in 0..range.len() {
                let (a, mut w) = (projected.col(j), shrunk.col_mut(j));
                for (i, &gain) in gains.iter().enumerate() {
                    w[i] = a[i] * gain;
                }
            }
            mul_into(pred.as_mut(), spectrum.eval_basis.as_ref(), shrunk.as_ref());
            let fold_scores = score_columns(pred.as_ref(), truth, sst, self.scoring);
            for (j, s) in fold_scores.into_iter().enumerate() {
                out[(k, range.start + j)] += s / self.n_folds as f64;
            }
        }
    }
}

/// Per-target score of predictions `pred` against `truth` (both n_te×c), with `sst` the
/// held-out sums of squares around their own mean (himalaya's `r2_score` / `l2_neg_loss`).
fn score_columns(
    pred: MatRef<'_, f32>,
    truth: MatRef<'_, f32>,
    sst: &[f64],
    scoring: Scoring,
) -> Vec<f64> {
    let n = pred.nrows() as f64;
    par_map_ranges(pred.ncols(), |cols| {
        cols.map(|j| {
            let (p, y) = (pred.col(j), truth.col(j));
            let sse: f64 = (0..pred.nrows())
                .map(|i| (y[i] as f64 - p[i] as f64).powi(2))
                .sum();
            match scoring {
                Scoring::NegMse => -sse / n,
                Scoring::R2 if sst[j] == 0.0 => 0.0,
                Scoring::R2 => 1.0 - sse / sst[j],
            }
        })
        .collect()
    })
}

/// One fold's γ-independent products.
struct Fold {
    train: Vec<usize>,
    test: Vec<usize>,
    /// Primal: the train-centered covariance `X_trᵀX_tr` (p×p).
    gram: Mat<f64>,
    /// Primal: held-out rows of X centered with the train mean (n_te×p).
    eval: Mat<f32>,
    /// Primal: `X_trᵀ Y_tr` (p×t); dual: `Y_tr` (n_tr×t); train-centered.
    source: Mat<f32>,
    /// Held-out targets minus the train mean (n_te×t).
    y_test: Mat<f32>,
    /// Held-out sum of squares around the held-out mean, per target (t).
    sst: Vec<f64>,
}

/// The eigendecomposition of one (candidate, fold): eigenvalues `s` (r), `projector` (r×m)
/// mapping [`Fold::source`] to spectral coefficients, `eval_basis` (n_te×r).
struct Spectrum {
    eigenvalues: Vec<f64>,
    projector: Mat<f32>,
    eval_basis: Mat<f32>,
}

impl Spectrum {
    /// `1/(s_i + α)` per eigenvalue, f32.
    fn gains(&self, alpha: f64) -> Vec<f32> {
        self.eigenvalues
            .iter()
            .map(|&s| (1.0 / (s + alpha)) as f32)
            .collect()
    }
}

impl Fold {
    fn new(search: &Search<'_>, shared: &Shared, fold: usize) -> Self {
        let x = search.design.x.as_ref();
        let test: Vec<usize> = (0..x.nrows())
            .filter(|&i| search.folds[i] == fold)
            .collect();
        let train: Vec<usize> = (0..x.nrows())
            .filter(|&i| search.folds[i] != fold)
            .collect();
        let n_train = train.len() as f64;
        let x_mean = match search.fit_intercept {
            true => row_mean(x, &train),
            false => vec![0.0; x.ncols()],
        };
        let x_test = take_rows(x, &test);
        let primal = search.solver == Solver::Primal;
        let (gram, eval) = match primal {
            true => {
                let test_gram = gram_of_columns(x_test.as_ref());
                let gram = Mat::from_fn(x.ncols(), x.ncols(), |i, j| {
                    shared.gram[(i, j)] - test_gram[(i, j)] - n_train * x_mean[i] * x_mean[j]
                });
                let eval = Mat::from_fn(test.len(), x.ncols(), |i, j| {
                    (x_test[(i, j)] as f64 - x_mean[j]) as f32
                });
                (gram, eval)
            }
            false => (Mat::zeros(0, 0), Mat::zeros(0, 0)),
        };
        let source_rows = if primal { x.ncols() } else { train.len() };
        let mut fold = Fold {
            source: Mat::zeros(source_rows, search.y.ncols()),
            y_test: Mat::zeros(test.len(), search.y.ncols()),
            sst: vec![0.0; search.y.ncols()],
            train,
            test,
            gram,
            eval,
        };
        for range in search.chunks() {
            fold.fill_targets(search, shared, &x_test, &x_mean, range);
        }
        fold
    }

    /// Fills `source`, `y_test` and `sst` for the target columns `range`.
    fn fill_targets(
        &mut self,
        search: &Search<'_>,
        shared: &Shared,
        x_test: &Mat<f32>,
        x_mean: &[f64],
        range: Range<usize>,
    ) {
        let y_c = search.centered(range.clone());
        let n_train = self.train.len() as f64;
        let y_mean = match search.fit_intercept {
            true => row_mean(y_c.as_ref(), &self.train),
            false => vec![0.0; range.len()],
        };
        let y_test = take_rows(y_c.as_ref(), &self.test);
        let mut source = self.source.as_mut().subcols_mut(range.start, range.len());
        match search.solver {
            Solver::Primal => {
                // Σ_tr (x−m)(y−ȳ)ᵀ = Σ_all x yᵀ − Σ_te x yᵀ − n_tr m ȳᵀ (x, y centered on all rows)
                let test_cross = cross32(x_test.as_ref(), y_test.as_ref());
                for j in 0..range.len() {
                    for i in 0..source.nrows() {
                        let all = shared.cross[(i, range.start + j)] as f64;
                        let value =
                            all - test_cross[(i, j)] as f64 - n_train * x_mean[i] * y_mean[j];
                        source[(i, j)] = value as f32;
                    }
                }
            }
            Solver::Dual => {
                for j in 0..range.len() {
                    for (i, &row) in self.train.iter().enumerate() {
                        source[(i, j)] = (y_c[(row, j)] as f64 - y_mean[j]) as f32;
                    }
                }
            }
        }
        for (j, &mean) in y_mean.iter().enumerate() {
            let column = y_test.col(j);
            let held_out_mean =
                (0..column.nrows()).map(|i| column[i] as f64).sum::<f64>() / column.nrows() as f64;
            let mut sst = 0.0;
            for i in 0..column.nrows() {
                sst += (column[i] as f64 - held_out_mean).powi(2);
                self.y_test[(i, range.start + j)] = (column[i] as f64 - mean) as f32;
            }
            self.sst[range.start + j] = sst;
        }
    }

    /// Eigendecomposition of the fold's training problem for candidate `gamma`.
    fn spectrum(&self, search: &Search<'_>, shared: &Shared, gamma: &[f64]) -> Result<Spectrum> {
        match search.solver {
            Solver::Primal => {
                let scales = search.design.column_scales(gamma);
                let (s, v) = eigh_psd(
                    scale_both_sides(self.gram.as_ref(), &scales).as_ref(),
                    "fold covariance XᵀX (banded)",
                )?;
                let dv = Mat::from_fn(v.nrows(), v.ncols(), |i, j| (v[(i, j)] * scales[i]) as f32);
                let mut eval_basis = Mat::<f32>::zeros(self.test.len(), dv.ncols());
                mul_into(eval_basis.as_mut(), self.eval.as_ref(), dv.as_ref());
                Ok(Spectrum {
                    eigenvalues: s,
                    projector: dv.transpose().to_owned(),
                    eval_basis,
                })
            }
            Solver::Dual => {
                let kernel = weighted_sum(&shared.kernels, gamma);
                let (train_kernel, test_kernel) =
                    self.centered_kernels(kernel.as_ref(), search.fit_intercept);
                let (s, q) = eigh_psd(train_kernel.as_ref(), "fold Gram XXᵀ (banded)")?;
                let eval_basis = to_f32(mul64(test_kernel.as_ref(), q.as_ref()).as_ref());
                Ok(Spectrum {
                    eigenvalues: s,
                    projector: to_f32(q.transpose()),
                    eval_basis,
                })
            }
        }
    }

    /// The train×train and test×train blocks of `kernel` (n×n), centered on the training rows
    /// (himalaya's `KernelCenterer` fitted on the training block) when an intercept is fitted.
    fn centered_kernels(&self, kernel: MatRef<'_, f64>, center: bool) -> (Mat<f64>, Mat<f64>) {
        let n_train = self.train.len() as f64;
        // r_i = mean over training columns of K[i, ·]; μ = mean over training rows of r
        let row_means: Vec<f64> = match center {
            true => (0..kernel.nrows())
                .map(|i| self.train.iter().map(|&l| kernel[(i, l)]).sum::<f64>() / n_train)
                .collect(),
            false => vec![0.0; kernel.nrows()],
        };
        let mu = self.train.iter().map(|&l| row_means[l]).sum::<f64>() / n_train;
        let block = |rows: &[usize]| {
            Mat::from_fn(rows.len(), self.train.len(), |i, j| {
                let (a, b) = (rows[i], self.train[j]);
                kernel[(a, b)] - row_means[a] - row_means[b] + mu
            })
        };
        (block(&self.train), block(&self.test))
    }
}

/// Mean of the rows `rows` of `m`, per column (f64).
fn row_mean(m: MatRef<'_, f32>, rows: &[usize]) -> Vec<f64> {
    let count = rows.len().max(1) as f64;
    (0..m.ncols())
        .map(|j| {
            let column = m.col(j);
            rows.iter().map(|&i| column[i] as f64).sum::<f64>() / count
        })
        .collect()
}

/// Per-target outcome of the search.
pub(crate) struct Selection {
    /// Chosen candidate index (t).
    pub candidate: Vec<usize>,
    /// Chosen alpha (t).
    pub alpha: Vec<f64>,
    /// Per candidate, the mean CV score at its best alpha (n_iter×t; himalaya's `cv_scores_`).
    pub candidate_scores: Mat<f64>,
}

/// himalaya's selection: per candidate in order, each target's best alpha (ties → larger
/// alpha); the candidate replaces the target's best only if it scores higher by more than
/// [`UPDATE_EPSILON`].
pub(crate) fn select(scores: &[Mat<f64>], alphas: &[f64]) -> Selection {
    let t = scores[0].ncols();
    let mut best = vec![f64::NEG_INFINITY; t];
    let mut selection = Selection {
        candidate: vec![0; t],
        alpha: vec![1.0; t],
        candidate_scores: Mat::zeros(scores.len(), t),
    };
    for (g, grid) in scores.iter().enumerate() {
        for j in 0..t {
            let column: Vec<f64> = (0..alphas.len()).map(|k| grid[(k, j)]).collect();
            let k = select_himalaya(&column, alphas);
            let tilted = column[k] + 1e-10 * alphas[k].ln();
            selection.candidate_scores[(g, j)] = column[k];
            if tilted > best[j] + UPDATE_EPSILON {
                best[j] = tilted;
                selection.candidate[j] = g;
                selection.alpha[j] = alphas[k];
            }
        }
    }
    selection
}
