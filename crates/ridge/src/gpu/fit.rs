//! The GPU fit: one eigendecomposition, then every alpha and target as matrix products.
//!
//! With the transformed design A = ((X − mean)/scale)ᵀ (p×n on the device, the C-order .npy
//! as it is) the solver builds an orthonormal basis Q (n×m) of the fitted space with
//! eigenvalues λ (m):
//! * dual (p > n): Q = eigenvectors of K = AᵀA. With an intercept K is first rotated by the
//!   Householder reflection H that maps 1/√n to e₀, and its trailing (n−1)² block is
//!   decomposed (the constant direction is exactly out of the basis, as in the CPU's GCV);
//!   Q = H[0; V];
//! * primal (p ≤ n): AAᵀ = UΛUᵀ and Q = AᵀUΛ^{-1/2} (λ below rounding dropped).
//!
//! Then, for targets Y (centered): R = QᵀY, and for every alpha
//! * residual norms ‖(I−H)y‖² = Σ_k (α/(λ_k+α))² R_kj² + ‖y_⊥‖² (one product for all alphas);
//! * LOO residuals E = Y − Q diag(λ/(λ+α)) R, each row divided by 1 − h_ii,
//!   h = (Q∘Q)·λ/(λ+α) (+1/n with an intercept);
//! * weights at each target's alpha: dual A·(Q diag(1/(λ+α_j)) R) (the dual coefficients, then
//!   the design), primal U diag(√λ/(λ+α_j)) R.

use std::ops::Range;

use cudarc::driver::{CudaSlice, LaunchConfig};
use faer::{Mat, MatRef};

use super::context::{elementwise, gpu_error, int, long, ptr, Arg, Gpu, GpuReal, Ptr};
use crate::error::{Result, RidgeError};
use crate::fit::{trace, Cv, CvMethod, Precision, RidgeCv};
use crate::model::{ModelOptions, RidgeModel, TargetRange};
use crate::select::{select_first_best, Scoring};
use crate::spectral::Solver;

/// Fits `targets` of `y` on CUDA device `ordinal` (GCV or LOO; see the module doc).
pub(crate) fn fit_on_gpu(
    estimator: &RidgeCv,
    ordinal: usize,
    x: MatRef<'_, f32>,
    y: MatRef<'_, f32>,
    targets: Range<usize>,
) -> Result<RidgeModel> {
    if matches!(estimator.cv, Cv::KFold { .. }) {
        return Err(RidgeError::Options(
            "K-fold cross-validation runs on the CPU only; on a GPU use GCV or LOO \
             (--cv gcv or --cv loo), or --device cpu"
                .into(),
        ));
    }
    check_sizes(x, targets.len())?;
    let gpu = Gpu::open(ordinal)?;
    trace("GPU start");
    match estimator.precision {
        Precision::F32 => Solve::<f32>::run(estimator, &gpu, x, y, targets),
        Precision::F64 => Solve::<f64>::run(estimator, &gpu, x, y, targets),
    }
}

/// cuBLAS and cuSOLVER take 32-bit sizes; the kernels 32-bit row and column counts.
fn check_sizes(x: MatRef<'_, f32>, n_targets: usize) -> Result<()> {
    let limit = i32::MAX as usize;
    let (n, p) = (x.nrows(), x.ncols());
    if n > limit || p > limit || n_targets > limit || n.min(p).saturating_mul(n.min(p)) > limit {
        return Err(RidgeError::Shape(format!(
            "X is {n}×{p} with {n_targets} targets: the GPU solver handles at most {limit} \
             rows, columns or targets and a Gram matrix of at most {limit} entries; use --device cpu"
        )));
    }
    Ok(())
}

/// The transformed design on the device.
struct Design<T> {
    /// A = ((X − mean)/scale)ᵀ, p×n, leading dimension p.
    a: CudaSlice<T>,
    n: usize,
    p: usize,
    mean: Vec<f64>,
    scale: Vec<f64>,
}

/// The orthonormal basis of the fitted space and its eigenvalues.
struct Spectrum<T> {
    /// Holds Q (n×m, leading dimension n) from `q_offset`.
    q: CudaSlice<T>,
    q_offset: usize,
    m: usize,
    eigenvalues: Vec<f64>,
    eigenvalues_device: CudaSlice<f64>,
    /// Primal only: the kept eigenvectors U (p×m, leading dimension p) of AAᵀ.
    u: Option<(CudaSlice<T>, usize)>,
}

/// Y (targets × samples on the device: the C-order .npy as it is) and its means.
struct Targets {
    raw: CudaSlice<f32>,
    t: usize,
    mean: Vec<f64>,
    mean_device: CudaSlice<f64>,
}

/// Per-chunk device buffers, allocated once for the largest chunk.
struct Work<T> {
    chunk: usize,
    yc: CudaSlice<T>,
    r: CudaSlice<T>,
    scratch: CudaSlice<T>,
    work: CudaSlice<T>,
    w: CudaSlice<T>,
    w32: Option<CudaSlice<f32>>,
    sums: CudaSlice<f64>,
    chosen: CudaSlice<f64>,
    scores: CudaSlice<T>,
    intercept: CudaSlice<T>,
}

/// What the chunk loop produces, in raw-X space.
struct Fitted {
    /// p×t, raw-X space.
    weights: Mat<f32>,
    intercept: Vec<f32>,
    scores: Mat<f32>,
    best: Vec<usize>,
}

struct Solve<'g, T> {
    gpu: &'g Gpu,
    estimator: &'g RidgeCv,
    n_samples: usize,
    _t: std::marker::PhantomData<T>,
}

impl<'g, T: GpuReal> Solve<'g, T> {
    fn run(
        estimator: &'g RidgeCv,
        gpu: &'g Gpu,
        x: MatRef<'_, f32>,
        y: MatRef<'_, f32>,
        targets: Range<usize>,
    ) -> Result<RidgeModel> {
        let solve = Solve::<T> {
            gpu,
            estimator,
            n_samples: x.nrows(),
            _t: std::marker::PhantomData,
        };
        // the host's copy of the weights (p×t f32, 1 GB for the SD latent) is allocated and its
        // pages touched while the GPU works, not when the weights arrive
        let (p, t) = (x.ncols(), targets.len());
        let host_weights = std::thread::spawn(move || touched_zeros(p, t));
        let design = solve.design(x)?;
        solve.trace("design on the GPU");
        let solver = Solver::for_shape(design.n, design.p);
        let spectrum = match solver {
            Solver::Dual => solve.dual_spectrum(&design)?,
            Solver::Primal => solve.primal_spectrum(&design)?,
        };
        solve.trace("eigendecomposition");
        let y_all = solve.targets(y, targets.clone())?;
        solve.trace("targets on the GPU");
        let weights = host_weights
            .join()
            .map_err(|_| RidgeError::Gpu("allocating the host weights failed".into()))?;
        let fitted = solve.chunks(&design, &spectrum, &y_all, weights)?;
        Ok(solve.assemble(design, solver, fitted, y, targets))
    }

    fn trace(&self, step: &str) {
        if std::env::var_os("BRAINRECON_RIDGE_TRACE").is_some() {
            let _ = self.gpu.sync(step);
        }
        trace(step);
    }

    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        (ta, tb): (bool, bool),
        (m, n, k): (usize, usize, usize),
        alpha: f64,
        (a, lda): (Ptr, usize),
        (b, ldb): (Ptr, usize),
        beta: f64,
        (c, ldc): (Ptr, usize),
    ) -> Result<()> {
        let status = unsafe {
            T::gemm(
                &self.gpu.blas,
                ta,
                tb,
                m,
                n,
                k,
                alpha,
                a,
                lda,
                b,
                ldb,
                beta,
                c,
                ldc,
            )
        };
        self.gpu.check_blas(status, "a matrix product")
    }

    fn kernel(&self, name: &str) -> String {
        format!("{name}_{}", T::SUFFIX)
    }

    fn p<U>(&self, buffer: &CudaSlice<U>, offset: usize) -> Ptr {
        ptr(self.gpu, buffer, offset)
    }

    /// Row sums of a rows×cols matrix (`center` given: sums of squared deviations), f64.
    fn row_sums(
        &self,
        a: Ptr,
        ld: usize,
        rows: usize,
        cols: usize,
        suffix: &str,
        center: Ptr,
    ) -> Result<Vec<f64>> {
        let segments = cols.clamp(1, 64);
        let part = self.gpu.zeros::<f64>(rows * segments, "row sums")?;
        let out = self.gpu.zeros::<f64>(rows, "row sums")?;
        let grid = LaunchConfig {
            grid_dim: (rows.div_ceil(256) as u32, segments as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        self.gpu.launch(
            &format!("row_partials_{suffix}"),
            grid,
            &[
                Arg::Ptr(a),
                long(ld),
                int(rows),
                int(cols),
                Arg::Ptr(center),
                Arg::Ptr(self.p(&part, 0)),
            ],
        )?;
        self.gpu.launch(
            "sum_partials_f64",
            elementwise(rows),
            &[
                Arg::Ptr(self.p(&part, 0)),
                int(rows),
                int(segments),
                Arg::F64(1.0),
                Arg::Ptr(self.p(&out, 0)),
            ],
        )?;
        self.gpu.download(&out, rows, "row sums")
    }

    /// Errors like the CPU fit (array, row, column) when `raw` (the upload of `m`) holds a
    /// NaN or an infinity: counted on the device, located on the host only then.
    fn check_finite(
        &self,
        raw: &CudaSlice<f32>,
        name: &'static str,
        m: MatRef<'_, f32>,
    ) -> Result<()> {
        const BLOCKS: usize = 1024;
        let len = m.nrows() * m.ncols();
        let part = self.gpu.zeros::<u32>(BLOCKS, "value check")?;
        let grid = LaunchConfig {
            grid_dim: (BLOCKS as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        self.gpu.launch(
            "count_non_finite_f32",
            grid,
            &[
                Arg::Ptr(self.p(raw, 0)),
                long(len),
                Arg::Ptr(self.p(&part, 0)),
            ],
        )?;
        let bad: u64 = self
            .gpu
            .download(&part, BLOCKS, "value check")?
            .iter()
            .map(|&c| c as u64)
            .sum();
        if bad > 0 {
            crate::preprocess::check_finite(name, m)?;
            return Err(RidgeError::Gpu(format!(
                "{name} has {bad} non-finite values"
            )));
        }
        Ok(())
    }

    /// Uploads X, computes its column statistics and forms A in precision T.
    fn design(&self, x: MatRef<'_, f32>) -> Result<Design<T>> {
        let (n, p) = (x.nrows(), x.ncols());
        let raw = self.gpu.upload(&row_major(x), "X")?;
        self.check_finite(&raw, "X", x)?;
        let (means, scale) = self.column_statistics(&raw, n, p)?;
        let mean = if self.estimator.fit_intercept {
            means
        } else {
            vec![0.0; p]
        };
        let a = self.transform(raw, n, p, &mean, &scale)?;
        Ok(Design {
            a,
            n,
            p,
            mean,
            scale,
        })
    }

    /// Column means of X (n×p, uploaded as p×n) and the scales: population standard
    /// deviations with `standardize` (constant columns keep 1, scikit-learn's rule), else ones.
    fn column_statistics(
        &self,
        raw: &CudaSlice<f32>,
        n: usize,
        p: usize,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let sums = self.row_sums(self.p(raw, 0), p, p, n, "f32", 0)?;
        let means: Vec<f64> = sums.iter().map(|s| s / n as f64).collect();
        if !self.estimator.standardize {
            return Ok((means, vec![1.0; p]));
        }
        let means_device = self.gpu.upload(&means, "X means")?;
        let squares = self.row_sums(self.p(raw, 0), p, p, n, "f32", self.p(&means_device, 0))?;
        let scale = squares
            .iter()
            .zip(&means)
            .map(|(s, m)| {
                let std = (s / n as f64).sqrt();
                if std > 10.0 * f64::EPSILON * m.abs().max(1.0) {
                    std
                } else {
                    1.0
                }
            })
            .collect();
        Ok((means, scale))
    }

    /// A = ((X − mean)/scale)ᵀ in precision T: in place for f32 (no second copy of X).
    fn transform(
        &self,
        raw: CudaSlice<f32>,
        n: usize,
        p: usize,
        mean: &[f64],
        scale: &[f64],
    ) -> Result<CudaSlice<T>> {
        let shift = self.gpu.upload(mean, "X means")?;
        let inverse: Vec<f64> = scale.iter().map(|s| 1.0 / s).collect();
        let inverse = self.gpu.upload(&inverse, "X scales")?;
        let scale_ptr = if self.estimator.standardize {
            self.p(&inverse, 0)
        } else {
            0
        };
        let affine = |input: Ptr, output: Ptr, name: &str| {
            self.gpu.launch(
                name,
                elementwise(n * p),
                &[
                    Arg::Ptr(input),
                    long(p),
                    Arg::Ptr(output),
                    long(p),
                    int(p),
                    int(n),
                    Arg::Ptr(self.p(&shift, 0)),
                    Arg::Ptr(scale_ptr),
                    Arg::Ptr(0),
                ],
            )
        };
        if T::SUFFIX == "f32" {
            let raw_ptr = self.p(&raw, 0);
            affine(raw_ptr, raw_ptr, "affine_f32_to_f32")?;
            // SAFETY: T is f32 here (same size and layout)
            return Ok(unsafe { std::mem::transmute::<CudaSlice<f32>, CudaSlice<T>>(raw) });
        }
        let a = self.gpu.zeros::<T>(n * p, "X in float64")?;
        affine(
            self.p(&raw, 0),
            self.p(&a, 0),
            &format!("affine_f32_to_{}", T::SUFFIX),
        )?;
        Ok(a)
    }

    /// Eigenvalues (ascending, as f64) and eigenvectors over the m×m matrix at `a` (ld `lda`).
    fn eigh(&self, a: Ptr, lda: usize, m: usize) -> Result<Vec<f64>> {
        let w = self.gpu.zeros::<T>(m, "eigenvalues")?;
        let mut lwork = 0i32;
        let status = unsafe { T::syevd_work(&self.gpu.dn, m, a, lda, self.p(&w, 0), &mut lwork) };
        check_solver(status, m)?;
        let work = self
            .gpu
            .zeros::<T>(lwork.max(1) as usize, "eigendecomposition workspace")?;
        let info = self.gpu.zeros::<i32>(1, "eigendecomposition status")?;
        let status = unsafe {
            T::syevd(
                &self.gpu.dn,
                m,
                a,
                lda,
                self.p(&w, 0),
                self.p(&work, 0),
                lwork,
                self.p(&info, 0),
            )
        };
        check_solver(status, m)?;
        let info = self.gpu.download(&info, 1, "eigendecomposition status")?[0];
        if info != 0 {
            return Err(RidgeError::Decomposition(if info > 0 {
                "Gram (GPU)"
            } else {
                "Gram (GPU; invalid argument)"
            }));
        }
        let values = self.gpu.download(&w, m, "eigenvalues")?;
        Ok(values.iter().map(|v| to_f64(*v).max(0.0)).collect())
    }

    /// Dual basis: eigenvectors of K = AᵀA, the constant direction rotated out with an intercept.
    fn dual_spectrum(&self, design: &Design<T>) -> Result<Spectrum<T>> {
        let (n, p) = (design.n, design.p);
        let k = self.gpu.zeros::<T>(n * n, "the n×n Gram matrix")?;
        let (a, kp) = (self.p(&design.a, 0), self.p(&k, 0));
        self.gemm((true, false), (n, n, p), 1.0, (a, p), (a, p), 0.0, (kp, n))?;
        self.trace("Gram matrix");
        if !self.estimator.fit_intercept {
            let eigenvalues = self.eigh(kp, n, n)?;
            return self.spectrum(k, 0, eigenvalues, None);
        }
        let reflection = Reflection::new(n);
        let v = self.gpu.upload(
            &reflection.v.iter().map(|&e| T::of(e)).collect::<Vec<_>>(),
            "reflection",
        )?;
        self.deflate(&reflection, &v, kp, n)?;
        // K'[1:, 1:] holds K on the complement of the constant vector
        let eigenvalues = self.eigh(kp + elem::<T>(n + 1), n, n - 1)?;
        // Q = H [0; V]: row 0 of the eigenvector columns is zero, then the reflection
        let columns = kp + elem::<T>(n);
        self.gpu.launch(
            &self.kernel("zero_row"),
            elementwise(n - 1),
            &[Arg::Ptr(columns), long(n), int(0), int(n - 1)],
        )?;
        let u = self.gpu.zeros::<T>(n - 1, "reflection product")?;
        let status = unsafe {
            T::gemv(
                &self.gpu.blas,
                true,
                n,
                n - 1,
                reflection.beta,
                columns,
                n,
                self.p(&v, 0),
                0.0,
                self.p(&u, 0),
            )
        };
        self.gpu
            .check_blas(status, "the reflection of the eigenvectors")?;
        self.gemm(
            (false, true),
            (n, n - 1, 1),
            -1.0,
            (self.p(&v, 0), n),
            (self.p(&u, 0), n - 1),
            1.0,
            (columns, n),
        )?;
        self.spectrum(k, n, eigenvalues, None)
    }

    /// K ← H K H for the reflection H = I − β v vᵀ: K − v zᵀ − z vᵀ with
    /// z = β K v − (β²/2)(vᵀ K v) v (one matrix-vector product and one rank-2 update).
    fn deflate(&self, reflection: &Reflection, v: &CudaSlice<T>, kp: Ptr, n: usize) -> Result<()> {
        let kv = self.gpu.zeros::<T>(n, "reflection product")?;
        let status = unsafe {
            T::gemv(
                &self.gpu.blas,
                false,
                n,
                n,
                1.0,
                kp,
                n,
                self.p(v, 0),
                0.0,
                self.p(&kv, 0),
            )
        };
        self.gpu
            .check_blas(status, "the reflection of the Gram matrix")?;
        let kv: Vec<f64> = self
            .gpu
            .download(&kv, n, "reflection product")?
            .into_iter()
            .map(to_f64)
            .collect();
        let z = reflection.z(&kv);
        // [v z] (n×2) · [z v]ᵀ: both products of the rank-2 update in one call
        let left: Vec<T> = reflection.v.iter().chain(&z).map(|&e| T::of(e)).collect();
        let right: Vec<T> = z.iter().chain(&reflection.v).map(|&e| T::of(e)).collect();
        let left = self.gpu.upload(&left, "reflection update")?;
        let right = self.gpu.upload(&right, "reflection update")?;
        self.gemm(
            (false, true),
            (n, n, 2),
            -1.0,
            (self.p(&left, 0), n),
            (self.p(&right, 0), n),
            1.0,
            (kp, n),
        )
    }

    /// Primal basis: Q = AᵀUΛ^{-1/2} over the eigenvalues above rounding.
    fn primal_spectrum(&self, design: &Design<T>) -> Result<Spectrum<T>> {
        let (n, p) = (design.n, design.p);
        let c = self.gpu.zeros::<T>(p * p, "the p×p covariance matrix")?;
        let (a, cp) = (self.p(&design.a, 0), self.p(&c, 0));
        self.gemm((false, true), (p, p, n), 1.0, (a, p), (a, p), 0.0, (cp, p))?;
        self.trace("covariance matrix");
        let all = self.eigh(cp, p, p)?;
        let largest = all.last().copied().unwrap_or(0.0);
        let epsilon = if T::SUFFIX == "f32" {
            f32::EPSILON as f64
        } else {
            f64::EPSILON
        };
        let first = all
            .iter()
            .position(|&l| l > largest * epsilon * p as f64)
            .unwrap_or(p);
        let m = p - first;
        if m == 0 {
            return Err(RidgeError::Shape(
                "X has no variance: every column is constant".into(),
            ));
        }
        let eigenvalues = all[first..].to_vec();
        let q = self.gpu.zeros::<T>(n * m, "the n×m basis")?;
        let qp = self.p(&q, 0);
        self.gemm(
            (true, false),
            (n, m, p),
            1.0,
            (a, p),
            (cp + elem::<T>(first * p), p),
            0.0,
            (qp, n),
        )?;
        let inverse_roots: Vec<f64> = eigenvalues.iter().map(|l| 1.0 / l.sqrt()).collect();
        let inverse_roots = self.gpu.upload(&inverse_roots, "eigenvalues")?;
        self.gpu.launch(
            &self.kernel("affine"),
            elementwise(n * m),
            &[
                Arg::Ptr(qp),
                long(n),
                Arg::Ptr(qp),
                long(n),
                int(n),
                int(m),
                Arg::Ptr(0),
                Arg::Ptr(0),
                Arg::Ptr(self.p(&inverse_roots, 0)),
            ],
        )?;
        self.spectrum(q, 0, eigenvalues, Some((c, first * p)))
    }

    fn spectrum(
        &self,
        q: CudaSlice<T>,
        q_offset: usize,
        eigenvalues: Vec<f64>,
        u: Option<(CudaSlice<T>, usize)>,
    ) -> Result<Spectrum<T>> {
        let eigenvalues_device = self.gpu.upload(&eigenvalues, "eigenvalues")?;
        Ok(Spectrum {
            q,
            q_offset,
            m: eigenvalues.len(),
            eigenvalues,
            eigenvalues_device,
            u,
        })
    }

    /// Uploads the target columns `targets` of Y and their means.
    fn targets(&self, y: MatRef<'_, f32>, targets: Range<usize>) -> Result<Targets> {
        let (n, t) = (y.nrows(), targets.len());
        let sub = y.subcols(targets.start, t);
        let raw = self.gpu.upload(&row_major(sub), "Y")?;
        self.check_finite(&raw, "Y", sub)?;
        let sums = self.row_sums(self.p(&raw, 0), t, t, n, "f32", 0)?;
        let mean: Vec<f64> = sums.iter().map(|s| s / n as f64).collect();
        let mean_device = self.gpu.upload(&mean, "Y means")?;
        Ok(Targets {
            raw,
            t,
            mean,
            mean_device,
        })
    }

    /// The largest target chunk whose buffers fit in 80% of the free device memory.
    fn work(&self, design: &Design<T>, spectrum: &Spectrum<T>, t: usize) -> Result<Work<T>> {
        let (n, p, m) = (design.n, design.p, spectrum.m);
        let size = std::mem::size_of::<T>();
        let n_alphas = self.estimator.alphas.len();
        let per_target = size * (2 * n + 2 * m + p + n_alphas + 1)
            + if size == 4 { 0 } else { 4 * p }
            + 8 * (n_alphas + 2);
        let (free, _) = self
            .gpu
            .context
            .mem_get_info()
            .map_err(|e| gpu_error("reading free memory", e))?;
        let fit = (free as f64 * 0.8) as usize / per_target;
        if fit == 0 {
            return Err(RidgeError::Gpu(format!(
                "the GPU has {:.2} GB free, too little for one target's buffers",
                free as f64 / 1e9
            )));
        }
        // BRAINRECON_GPU_TARGET_CHUNK caps the chunk (the tests use it to cross chunk borders)
        let cap = std::env::var("BRAINRECON_GPU_TARGET_CHUNK")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&c| c > 0)
            .unwrap_or(usize::MAX);
        let chunk = t.min(fit).min(cap);
        Ok(Work {
            chunk,
            yc: self.gpu.zeros(n * chunk, "centered targets")?,
            r: self.gpu.zeros(m * chunk, "projected targets")?,
            scratch: self.gpu.zeros(m * chunk, "filtered targets")?,
            work: self.gpu.zeros(n * chunk, "residuals")?,
            w: self.gpu.zeros(p * chunk, "weights")?,
            w32: if size == 4 {
                None
            } else {
                Some(self.gpu.zeros(p * chunk, "float32 weights")?)
            },
            sums: self.gpu.zeros(chunk, "column sums")?,
            chosen: self.gpu.zeros(chunk, "chosen alphas")?,
            scores: self.gpu.zeros(n_alphas * chunk, "scores")?,
            intercept: self.gpu.zeros(chunk, "intercepts")?,
        })
    }

    /// Scores, alpha choice and raw-space weights for every target, chunk by chunk.
    fn chunks(
        &self,
        design: &Design<T>,
        spectrum: &Spectrum<T>,
        y: &Targets,
        weights: Mat<f32>,
    ) -> Result<Fitted> {
        // the leverages' temporary n×m buffer is freed before the chunk buffers take the memory
        let loo = match self.estimator.cv {
            Cv::Loo => Some(self.loo_weights(design.n, spectrum)?),
            _ => None,
        };
        let mut work = self.work(design, spectrum, y.t)?;
        let grid = GridOnDevice::new(self, spectrum, work.chunk)?;
        let n_alphas = self.estimator.alphas.len();
        let mut fitted = Fitted {
            weights,
            intercept: vec![0.0; y.t],
            scores: Mat::zeros(n_alphas, y.t),
            best: vec![0; y.t],
        };
        let mut start = 0;
        while start < y.t {
            let count = work.chunk.min(y.t - start);
            self.center_chunk(y, start, count, design.n, &mut work)?;
            self.project(spectrum, design.n, count, &mut work)?;
            let norms = self.gpu.download(&work.sums, count, "target norms")?;
            // SST around each target's mean: ‖y‖² once centered, ‖y‖² − n·ȳ² if not
            let n = design.n as f64;
            let sst: Vec<f64> = match self.estimator.fit_intercept {
                true => norms.clone(),
                false => norms
                    .iter()
                    .zip(&y.mean[start..])
                    .map(|(s, m)| (s - n * m * m).max(0.0))
                    .collect(),
            };
            let scores = match &loo {
                Some(inverse) => {
                    self.loo_scores(design.n, spectrum, &grid, inverse, count, &sst, &mut work)?
                }
                None => self.gcv_scores(design, spectrum, &grid, count, &norms, &sst, &mut work)?,
            };
            self.choose(&scores, start, count, &mut fitted, &mut work)?;
            self.weights(design, spectrum, count, &mut work)?;
            self.finish_chunk(design, y, start, count, &mut fitted, &mut work)?;
            start += count;
        }
        self.trace("scores and weights");
        Ok(fitted)
    }

    /// Y[:, start..start+count] centered (with an intercept) into `work.yc` (n×count).
    fn center_chunk(
        &self,
        y: &Targets,
        start: usize,
        count: usize,
        n: usize,
        work: &mut Work<T>,
    ) -> Result<()> {
        let mean = if self.estimator.fit_intercept {
            self.p(&y.mean_device, start)
        } else {
            0
        };
        let grid = LaunchConfig {
            grid_dim: (count.div_ceil(32) as u32, n.div_ceil(32) as u32, 1),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        self.gpu.launch(
            &self.kernel("center_transpose"),
            grid,
            &[
                Arg::Ptr(self.p(&y.raw, 0)),
                long(y.t),
                int(start),
                int(count),
                int(n),
                Arg::Ptr(mean),
                Arg::Ptr(self.p(&work.yc, 0)),
            ],
        )?;
        Ok(())
    }

    /// R = Qᵀ Y (m×count) into `work.r`, and ‖y_j‖² into `work.sums`.
    fn project(
        &self,
        spectrum: &Spectrum<T>,
        n: usize,
        count: usize,
        work: &mut Work<T>,
    ) -> Result<()> {
        let m = spectrum.m;
        let q = self.p(&spectrum.q, spectrum.q_offset);
        self.gemm(
            (true, false),
            (m, count, n),
            1.0,
            (q, n),
            (self.p(&work.yc, 0), n),
            0.0,
            (self.p(&work.r, 0), m),
        )?;
        self.column_sumsq(self.p(&work.yc, 0), n, n, count, 0, self.p(&work.sums, 0))
    }

    /// out[j] = Σ_i (A(i, j)·w_i)² for the `count` columns of A (rows×count, ld); w null: 1.
    fn column_sumsq(
        &self,
        a: Ptr,
        ld: usize,
        rows: usize,
        count: usize,
        w: Ptr,
        out: Ptr,
    ) -> Result<()> {
        let grid = LaunchConfig {
            grid_dim: (count as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        self.gpu.launch(
            &self.kernel("column_weighted_sumsq"),
            grid,
            &[Arg::Ptr(a), long(ld), int(rows), Arg::Ptr(w), Arg::Ptr(out)],
        )
    }

    /// out = R scaled per row k and column j by f(λ_k, α_j) (see the kernel's `kind`).
    fn filter(
        &self,
        spectrum: &Spectrum<T>,
        count: usize,
        alphas: Ptr,
        kind: i32,
        work: &mut Work<T>,
    ) -> Result<()> {
        let m = spectrum.m;
        self.gpu.launch(
            &self.kernel("spectral_filter"),
            elementwise(m * count),
            &[
                Arg::Ptr(self.p(&work.r, 0)),
                Arg::Ptr(self.p(&work.scratch, 0)),
                int(m),
                int(count),
                Arg::Ptr(self.p(&spectrum.eigenvalues_device, 0)),
                Arg::Ptr(alphas),
                Arg::I32(kind),
            ],
        )
    }

    /// Per-target scores over the grid (n_alphas × count, f64) by GCV.
    #[allow(clippy::too_many_arguments)]
    fn gcv_scores(
        &self,
        design: &Design<T>,
        spectrum: &Spectrum<T>,
        grid: &GridOnDevice<T>,
        count: usize,
        norms: &[f64],
        sst: &[f64],
        work: &mut Work<T>,
    ) -> Result<Mat<f64>> {
        let (n, m) = (design.n, spectrum.m);
        // the primal basis does not span Y: ‖y_⊥‖² = ‖y‖² − ‖R‖² adds to every residual
        let outside = if spectrum.u.is_some() {
            self.column_sumsq(self.p(&work.r, 0), m, m, count, 0, self.p(&work.sums, 0))?;
            let inside = self.gpu.download(&work.sums, count, "projected norms")?;
            norms
                .iter()
                .zip(&inside)
                .map(|(a, b)| (a - b).max(0.0))
                .collect()
        } else {
            vec![0.0; count]
        };
        self.gpu.launch(
            &self.kernel("square"),
            elementwise(m * count),
            &[
                Arg::Ptr(self.p(&work.r, 0)),
                Arg::Ptr(self.p(&work.scratch, 0)),
                long(m * count),
            ],
        )?;
        let n_alphas = self.estimator.alphas.len();
        self.gemm(
            (false, false),
            (n_alphas, count, m),
            1.0,
            (self.p(&grid.shrink_squared, 0), n_alphas),
            (self.p(&work.scratch, 0), m),
            0.0,
            (self.p(&work.scores, 0), n_alphas),
        )?;
        let sse = self
            .gpu
            .download(&work.scores, n_alphas * count, "residual norms")?;
        let n_f = n as f64;
        Ok(Mat::from_fn(n_alphas, count, |k, j| {
            let sse = to_f64(sse[k + j * n_alphas]) + outside[j];
            let denominator = grid.residual_trace[k] / n_f;
            let corrected = if denominator > 0.0 {
                sse / (denominator * denominator)
            } else {
                f64::INFINITY
            };
            self.score(corrected, sst[j])
        }))
    }

    /// A target's score from its (corrected) squared error and its sum of squares around the mean.
    fn score(&self, error: f64, sst: f64) -> f64 {
        let n = self.n_samples as f64;
        match self.estimator.scoring {
            Scoring::NegMse => -error / n,
            Scoring::R2 if sst == 0.0 => 0.0,
            Scoring::R2 => 1.0 - error / sst,
        }
    }

    /// 1 / (1 − h_ii) for every sample and alpha (n × n_alphas, f64 on the device).
    fn loo_weights(&self, n: usize, spectrum: &Spectrum<T>) -> Result<CudaSlice<f64>> {
        let m = spectrum.m;
        let n_alphas = self.estimator.alphas.len();
        let squared = self.gpu.zeros::<T>(n * m, "squared basis")?;
        self.gpu.launch(
            &self.kernel("square"),
            elementwise(n * m),
            &[
                Arg::Ptr(self.p(&spectrum.q, spectrum.q_offset)),
                Arg::Ptr(self.p(&squared, 0)),
                long(n * m),
            ],
        )?;
        let fitted: Vec<T> = self
            .estimator
            .alphas
            .iter()
            .flat_map(|&alpha| {
                spectrum
                    .eigenvalues
                    .iter()
                    .map(move |&l| T::of(l / (l + alpha)))
            })
            .collect();
        let fitted = self.gpu.upload(&fitted, "leverage weights")?;
        let hat = self.gpu.zeros::<T>(n * n_alphas, "leverages")?;
        self.gemm(
            (false, false),
            (n, n_alphas, m),
            1.0,
            (self.p(&squared, 0), n),
            (self.p(&fitted, 0), m),
            0.0,
            (self.p(&hat, 0), n),
        )?;
        let hat = self.gpu.download(&hat, n * n_alphas, "leverages")?;
        let intercept = if self.estimator.fit_intercept {
            1.0 / n as f64
        } else {
            0.0
        };
        let inverse: Vec<f64> = hat
            .iter()
            .map(|&h| 1.0 / (1.0 - to_f64(h) - intercept))
            .collect();
        self.gpu.upload(&inverse, "leverages")
    }

    /// Per-target LOO scores over the grid: one product and one reduction per alpha.
    #[allow(clippy::too_many_arguments)]
    fn loo_scores(
        &self,
        n: usize,
        spectrum: &Spectrum<T>,
        grid: &GridOnDevice<T>,
        inverse: &CudaSlice<f64>,
        count: usize,
        sst: &[f64],
        work: &mut Work<T>,
    ) -> Result<Mat<f64>> {
        let m = spectrum.m;
        let n_alphas = self.estimator.alphas.len();
        let mut sse = Mat::<f64>::zeros(n_alphas, count);
        let q = self.p(&spectrum.q, spectrum.q_offset);
        for k in 0..n_alphas {
            self.filter(
                spectrum,
                count,
                self.p(&grid.constant_alphas, k * grid.chunk),
                2,
                work,
            )?;
            // E = Y − Q diag(λ/(λ+α)) R
            self.copy(self.p(&work.yc, 0), self.p(&work.work, 0), n * count)?;
            self.gemm(
                (false, false),
                (n, count, m),
                -1.0,
                (q, n),
                (self.p(&work.scratch, 0), m),
                1.0,
                (self.p(&work.work, 0), n),
            )?;
            self.column_sumsq(
                self.p(&work.work, 0),
                n,
                n,
                count,
                self.p(inverse, k * n),
                self.p(&work.sums, 0),
            )?;
            let row = self.gpu.download(&work.sums, count, "LOO errors")?;
            for (j, e) in row.into_iter().enumerate() {
                sse[(k, j)] = e;
            }
        }
        Ok(Mat::from_fn(n_alphas, count, |k, j| {
            self.score(sse[(k, j)], sst[j])
        }))
    }

    /// Copies `len` elements of T on the device.
    fn copy(&self, from: Ptr, to: Ptr, len: usize) -> Result<()> {
        self.gpu.launch(
            &self.kernel("affine"),
            elementwise(len),
            &[
                Arg::Ptr(from),
                long(len),
                Arg::Ptr(to),
                long(len),
                int(len),
                int(1),
                Arg::Ptr(0),
                Arg::Ptr(0),
                Arg::Ptr(0),
            ],
        )
    }

    /// Picks each target's alpha (first best in grid order) and uploads the choice.
    fn choose(
        &self,
        scores: &Mat<f64>,
        start: usize,
        count: usize,
        fitted: &mut Fitted,
        work: &mut Work<T>,
    ) -> Result<()> {
        let mut chosen = Vec::with_capacity(count);
        for j in 0..count {
            let column: Vec<f64> = (0..scores.nrows()).map(|k| scores[(k, j)]).collect();
            let best = select_first_best(&column);
            fitted.best[start + j] = best;
            chosen.push(self.estimator.alphas[best]);
            for (k, &s) in column.iter().enumerate() {
                fitted.scores[(k, start + j)] = s as f32;
            }
        }
        self.gpu
            .stream
            .memcpy_htod(&chosen, &mut work.chosen)
            .map_err(|e| gpu_error("copying the chosen alphas to the GPU", e))
    }

    /// Weights of the chunk's targets at their alphas into `work.w` (p×count).
    fn weights(
        &self,
        design: &Design<T>,
        spectrum: &Spectrum<T>,
        count: usize,
        work: &mut Work<T>,
    ) -> Result<()> {
        let (n, p, m) = (design.n, design.p, spectrum.m);
        let chosen = self.p(&work.chosen, 0);
        let w = self.p(&work.w, 0);
        match &spectrum.u {
            Some((u, offset)) => {
                self.filter(spectrum, count, chosen, 1, work)?;
                self.gemm(
                    (false, false),
                    (p, count, m),
                    1.0,
                    (self.p(u, *offset), p),
                    (self.p(&work.scratch, 0), m),
                    0.0,
                    (w, p),
                )
            }
            None => {
                // dual coefficients Q diag(1/(λ+α)) R, then A · coefficients
                self.filter(spectrum, count, chosen, 0, work)?;
                let q = self.p(&spectrum.q, spectrum.q_offset);
                let coefficients = self.p(&work.work, 0);
                self.gemm(
                    (false, false),
                    (n, count, m),
                    1.0,
                    (q, n),
                    (self.p(&work.scratch, 0), m),
                    0.0,
                    (coefficients, n),
                )?;
                self.gemm(
                    (false, false),
                    (p, count, n),
                    1.0,
                    (self.p(&design.a, 0), p),
                    (coefficients, n),
                    0.0,
                    (w, p),
                )
            }
        }
    }

    /// Raw-X-space weights (÷ scale), intercepts, and the copy back to the host.
    fn finish_chunk(
        &self,
        design: &Design<T>,
        y: &Targets,
        start: usize,
        count: usize,
        fitted: &mut Fitted,
        work: &mut Work<T>,
    ) -> Result<()> {
        let p = design.p;
        let w = self.p(&work.w, 0);
        if self.estimator.standardize {
            let inverse: Vec<f64> = design.scale.iter().map(|s| 1.0 / s).collect();
            let inverse = self.gpu.upload(&inverse, "X scales")?;
            self.gpu.launch(
                &self.kernel("affine"),
                elementwise(p * count),
                &[
                    Arg::Ptr(w),
                    long(p),
                    Arg::Ptr(w),
                    long(p),
                    int(p),
                    int(count),
                    Arg::Ptr(0),
                    Arg::Ptr(self.p(&inverse, 0)),
                    Arg::Ptr(0),
                ],
            )?;
        }
        if self.estimator.fit_intercept {
            let mean: Vec<T> = design.mean.iter().map(|&v| T::of(v)).collect();
            let mean = self.gpu.upload(&mean, "X means")?;
            let status = unsafe {
                T::gemv(
                    &self.gpu.blas,
                    true,
                    p,
                    count,
                    1.0,
                    w,
                    p,
                    self.p(&mean, 0),
                    0.0,
                    self.p(&work.intercept, 0),
                )
            };
            self.gpu.check_blas(status, "the intercepts")?;
            let offsets = self.gpu.download(&work.intercept, count, "intercepts")?;
            for (j, o) in offsets.into_iter().enumerate() {
                fitted.intercept[start + j] = (y.mean[start + j] - to_f64(o)) as f32;
            }
        }
        let source = match &work.w32 {
            None => w,
            Some(w32) => {
                self.gpu.launch(
                    "affine_f64_to_f32",
                    elementwise(p * count),
                    &[
                        Arg::Ptr(w),
                        long(p),
                        Arg::Ptr(self.p(w32, 0)),
                        long(p),
                        int(p),
                        int(count),
                        Arg::Ptr(0),
                        Arg::Ptr(0),
                        Arg::Ptr(0),
                    ],
                )?;
                self.p(w32, 0)
            }
        };
        // straight into the model's weights, whose columns are padded for alignment
        self.gpu.download_columns(
            source,
            p,
            fitted.weights.as_mut().subcols_mut(start, count),
            "weights",
        )
    }

    /// The model, as the CPU fit packs it.
    fn assemble(
        &self,
        design: Design<T>,
        solver: Solver,
        fitted: Fitted,
        y: MatRef<'_, f32>,
        targets: Range<usize>,
    ) -> RidgeModel {
        let Fitted {
            weights,
            intercept,
            scores,
            best,
        } = fitted;
        let estimator = self.estimator;
        RidgeModel {
            weights,
            intercept,
            x_mean: design.mean.iter().map(|&v| v as f32).collect(),
            x_scale: design.scale.iter().map(|&v| v as f32).collect(),
            alphas: best.iter().map(|&k| estimator.alphas[k]).collect(),
            cv_scores: scores,
            alpha_grid: estimator.alphas.clone(),
            options: ModelOptions {
                cv: CvMethod::from(&estimator.cv),
                scoring: estimator.scoring,
                fit_intercept: estimator.fit_intercept,
                standardize: estimator.standardize,
                solver,
            },
            target_range: TargetRange {
                start: targets.start,
                end: targets.end,
                total: y.ncols(),
            },
            metadata: Default::default(),
            dual: None,
        }
    }
}

/// The alpha grid as the chunk loop needs it on the device.
struct GridOnDevice<T> {
    /// (α_a/(λ_k+α_a))², n_alphas × m (leading dimension n_alphas).
    shrink_squared: CudaSlice<T>,
    /// Row a: `chunk` copies of α_a (per-target alphas for one grid point).
    constant_alphas: CudaSlice<f64>,
    chunk: usize,
    /// tr(I − H) per alpha, the intercept counted in H.
    residual_trace: Vec<f64>,
}

impl<T: GpuReal> GridOnDevice<T> {
    fn new(solve: &Solve<'_, T>, spectrum: &Spectrum<T>, chunk: usize) -> Result<Self> {
        let alphas = &solve.estimator.alphas;
        let n_alphas = alphas.len();
        let m = spectrum.m;
        let mut shrink = vec![T::of(0.0); n_alphas * m];
        for (k, &l) in spectrum.eigenvalues.iter().enumerate() {
            for (a, &alpha) in alphas.iter().enumerate() {
                let s = alpha / (l + alpha);
                shrink[a + k * n_alphas] = T::of(s * s);
            }
        }
        let constant: Vec<f64> = alphas
            .iter()
            .flat_map(|&a| std::iter::repeat_n(a, chunk))
            .collect();
        let n = solve.n_samples;
        let intercept = if solve.estimator.fit_intercept {
            1.0
        } else {
            0.0
        };
        let residual_trace = alphas
            .iter()
            .map(|&alpha| {
                n as f64
                    - intercept
                    - spectrum
                        .eigenvalues
                        .iter()
                        .map(|&l| l / (l + alpha))
                        .sum::<f64>()
            })
            .collect();
        Ok(Self {
            shrink_squared: solve.gpu.upload(&shrink, "alpha grid")?,
            constant_alphas: solve.gpu.upload(&constant, "alpha grid")?,
            chunk,
            residual_trace,
        })
    }
}

/// The reflection H = I − β v vᵀ that maps 1/√n to e₀ (v = 1/√n − e₀).
struct Reflection {
    v: Vec<f64>,
    beta: f64,
}

impl Reflection {
    fn new(n: usize) -> Self {
        let unit = 1.0 / (n as f64).sqrt();
        let mut v = vec![unit; n];
        v[0] -= 1.0;
        let norm2: f64 = v.iter().map(|e| e * e).sum();
        Self {
            v,
            beta: 2.0 / norm2,
        }
    }

    /// z = β K v − (β²/2)(vᵀ K v) v, given K v.
    fn z(&self, kv: &[f64]) -> Vec<f64> {
        let vkv: f64 = self.v.iter().zip(kv).map(|(a, b)| a * b).sum();
        let c = self.beta * self.beta / 2.0 * vkv;
        kv.iter()
            .zip(&self.v)
            .map(|(k, v)| self.beta * k - c * v)
            .collect()
    }
}

/// A p×t zero matrix whose memory is written (the allocator hands out untouched pages, which
/// would otherwise fault in one by one during the copy from the GPU).
fn touched_zeros(p: usize, t: usize) -> Mat<f32> {
    let mut m = Mat::<f32>::zeros(p, t);
    for j in 0..t {
        m.as_mut().col_mut(j).fill(0.0);
    }
    m
}

fn elem<T>(count: usize) -> u64 {
    (count * std::mem::size_of::<T>()) as u64
}

fn to_f64<T: GpuReal>(v: T) -> f64 {
    // T is f32 or f64: read it through its bytes
    let bytes = std::mem::size_of::<T>();
    unsafe {
        if bytes == 4 {
            *(&v as *const T as *const f32) as f64
        } else {
            *(&v as *const T as *const f64)
        }
    }
}

fn check_solver(status: cudarc::cusolver::sys::cusolverStatus_t, m: usize) -> Result<()> {
    use cudarc::cusolver::sys::cusolverStatus_t::CUSOLVER_STATUS_SUCCESS;
    if status == CUSOLVER_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(RidgeError::Gpu(format!(
            "cuSOLVER failed on the {m}×{m} eigendecomposition: {status:?}"
        )))
    }
}

/// `m` as a row-major buffer (no copy when it already is one).
fn row_major<'a>(m: MatRef<'a, f32>) -> std::borrow::Cow<'a, [f32]> {
    let (rows, cols) = (m.nrows(), m.ncols());
    if m.col_stride() == 1 && (m.row_stride() == cols as isize || rows <= 1) {
        // SAFETY: a row-major view with row stride `cols` covers rows·cols contiguous values
        std::borrow::Cow::Borrowed(unsafe { std::slice::from_raw_parts(m.as_ptr(), rows * cols) })
    } else {
        let mut out = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            out.extend((0..cols).map(|j| m[(i, j)]));
        }
        std::borrow::Cow::Owned(out)
    }
}
