// Element-wise and reduction steps of the GPU ridge solver, between the cuBLAS products and the
// cuSOLVER eigendecomposition. Compiled at run time by NVRTC for the device in use.
//
// Matrices are column-major: element (i, j) of an r×c matrix with leading dimension ld sits at
// i + j·ld. Reductions run in double and in a fixed order (no atomics): results are bitwise
// repeatable.

typedef long long i64;

// Partial row sums of A (rows×cols): part[i + s·rows] = Σ_{j in segment s} (A(i,j) - center[i])²
// when `center` is given, else Σ A(i,j). Grid: (ceil(rows/256), segments).
template <typename T>
__device__ void row_partials(const T* a, i64 ld, int rows, int cols, const double* center,
                             double* part) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  int segments = gridDim.y, s = blockIdx.y;
  int per = (cols + segments - 1) / segments;
  int begin = s * per, end = min(cols, begin + per);
  double acc = 0.0;
  if (center) {
    double c = center[i];
    for (int j = begin; j < end; ++j) {
      double d = (double)a[i + (i64)j * ld] - c;
      acc += d * d;
    }
  } else {
    for (int j = begin; j < end; ++j) acc += (double)a[i + (i64)j * ld];
  }
  part[i + (i64)s * rows] = acc;
}

// out[i] = scale · Σ_s part[i + s·rows], summed in segment order.
__device__ void sum_partials(const double* part, int rows, int segments, double scale,
                             double* out) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  double acc = 0.0;
  for (int s = 0; s < segments; ++s) acc += part[i + (i64)s * rows];
  out[i] = acc * scale;
}

// out(i, j) = (in(i, j) - shift[i]) · row_scale[i] · col_scale[j]; shift, row_scale and col_scale
// may be null (0, 1, 1). in and out may be the same buffer when TI and TO are the same type.
template <typename TI, typename TO>
__device__ void affine(const TI* in, i64 ld_in, TO* out, i64 ld_out, int rows, int cols,
                       const double* shift, const double* row_scale, const double* col_scale) {
  i64 total = (i64)rows * cols;
  for (i64 k = blockIdx.x * (i64)blockDim.x + threadIdx.x; k < total;
       k += (i64)gridDim.x * blockDim.x) {
    int i = (int)(k % rows), j = (int)(k / rows);
    double v = (double)in[i + (i64)j * ld_in];
    if (shift) v -= shift[i];
    if (row_scale) v *= row_scale[i];
    if (col_scale) v *= col_scale[j];
    out[i + (i64)j * ld_out] = (TO)v;
  }
}

// Targets first..first+count of Yᵀ (targets × samples, ld_in) → centered Y (samples × count,
// ld samples): out(i, j) = in(first + j, i) - mean[j] (mean may be null). 32×32 tiles through
// shared memory so that both the reads and the writes are coalesced. Block (32, 8).
template <typename T>
__device__ void center_transpose(const float* in, i64 ld_in, int first, int count, int samples,
                                 const double* mean, T* out) {
  __shared__ double tile[32][33];
  int j0 = blockIdx.x * 32, i0 = blockIdx.y * 32;
  for (int k = threadIdx.y; k < 32; k += blockDim.y) {
    int i = i0 + k, j = j0 + threadIdx.x;
    if (i < samples && j < count) {
      double v = (double)in[(i64)(first + j) + (i64)i * ld_in];
      tile[k][threadIdx.x] = mean ? v - mean[j] : v;
    }
  }
  __syncthreads();
  for (int k = threadIdx.y; k < 32; k += blockDim.y) {
    int j = j0 + k, i = i0 + threadIdx.x;
    if (i < samples && j < count) out[i + (i64)j * samples] = (T)tile[threadIdx.x][k];
  }
}

// out[k] = in[k]² for k < n.
template <typename T>
__device__ void square(const T* in, T* out, i64 n) {
  for (i64 k = blockIdx.x * (i64)blockDim.x + threadIdx.x; k < n;
       k += (i64)gridDim.x * blockDim.x) {
    T v = in[k];
    out[k] = v * v;
  }
}

// Spectral filter of projected targets: out(k, j) = in(k, j) · f(λ_k, α_j) for the m×c matrix
// `in` (ld m), with f = 1/(λ+α) (kind 0: dual coefficients), √λ/(λ+α) (kind 1: primal
// weights) or λ/(λ+α) (kind 2: fitted values).
template <typename T>
__device__ void spectral_filter(const T* in, T* out, int m, int c, const double* eigenvalues,
                                const double* alphas, int kind) {
  i64 total = (i64)m * c;
  for (i64 idx = blockIdx.x * (i64)blockDim.x + threadIdx.x; idx < total;
       idx += (i64)gridDim.x * blockDim.x) {
    int k = (int)(idx % m), j = (int)(idx / m);
    double lambda = eigenvalues[k], alpha = alphas[j];
    double f = kind == 0 ? 1.0 / (lambda + alpha)
             : kind == 1 ? sqrt(lambda) / (lambda + alpha)
                         : lambda / (lambda + alpha);
    out[idx] = (T)((double)in[idx] * f);
  }
}

// out[j] = Σ_i (A(i, j) · w[i])² over the rows of column j (w null: 1). One block of 256
// threads per column; a fixed-shape tree reduction.
template <typename T>
__device__ void column_weighted_sumsq(const T* a, i64 ld, int rows, const double* w,
                                      double* out) {
  __shared__ double partial[256];
  int j = blockIdx.x;
  const T* col = a + (i64)j * ld;
  double acc = 0.0;
  for (int i = threadIdx.x; i < rows; i += blockDim.x) {
    double v = (double)col[i];
    if (w) v *= w[i];
    acc += v * v;
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = 128; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[j] = partial[0];
}

// A(row, j) = 0 for j < cols.
template <typename T>
__device__ void zero_row(T* a, i64 ld, int row, int cols) {
  int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j < cols) a[row + (i64)j * ld] = (T)0;
}

// part[b] = number of non-finite values among a[k] handled by block b (grid-stride; block 256).
extern "C" __global__ void count_non_finite_f32(const float* a, i64 n, unsigned int* part) {
  __shared__ unsigned int counts[256];
  unsigned int c = 0;
  for (i64 k = blockIdx.x * (i64)blockDim.x + threadIdx.x; k < n; k += (i64)gridDim.x * blockDim.x)
    c += (a[k] - a[k] == 0.0f) ? 0u : 1u;  // false for NaN and ±∞
  counts[threadIdx.x] = c;
  __syncthreads();
  for (int stride = 128; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) counts[threadIdx.x] += counts[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) part[blockIdx.x] = counts[0];
}

#define INSTANTIATE(T, S)                                                                      \
  extern "C" __global__ void row_partials_##S(const T* a, i64 ld, int rows, int cols,          \
                                              const double* center, double* part) {            \
    row_partials<T>(a, ld, rows, cols, center, part);                                          \
  }                                                                                            \
  extern "C" __global__ void affine_f32_to_##S(const float* in, i64 ld_in, T* out, i64 ld_out, \
                                               int rows, int cols, const double* shift,        \
                                               const double* row_scale,                        \
                                               const double* col_scale) {                      \
    affine<float, T>(in, ld_in, out, ld_out, rows, cols, shift, row_scale, col_scale);         \
  }                                                                                            \
  extern "C" __global__ void affine_##S(const T* in, i64 ld_in, T* out, i64 ld_out, int rows,  \
                                        int cols, const double* shift,                         \
                                        const double* row_scale, const double* col_scale) {    \
    affine<T, T>(in, ld_in, out, ld_out, rows, cols, shift, row_scale, col_scale);             \
  }                                                                                            \
  extern "C" __global__ void center_transpose_##S(const float* in, i64 ld_in, int first,       \
                                                  int count, int samples, const double* mean,  \
                                                  T* out) {                                    \
    center_transpose<T>(in, ld_in, first, count, samples, mean, out);                          \
  }                                                                                            \
  extern "C" __global__ void square_##S(const T* in, T* out, i64 n) { square<T>(in, out, n); } \
  extern "C" __global__ void spectral_filter_##S(const T* in, T* out, int m, int c,            \
                                                 const double* eigenvalues,                    \
                                                 const double* alphas, int kind) {             \
    spectral_filter<T>(in, out, m, c, eigenvalues, alphas, kind);                              \
  }                                                                                            \
  extern "C" __global__ void column_weighted_sumsq_##S(const T* a, i64 ld, int rows,           \
                                                       const double* w, double* out) {         \
    column_weighted_sumsq<T>(a, ld, rows, w, out);                                             \
  }                                                                                            \
  extern "C" __global__ void zero_row_##S(T* a, i64 ld, int row, int cols) {                   \
    zero_row<T>(a, ld, row, cols);                                                             \
  }

INSTANTIATE(float, f32)
INSTANTIATE(double, f64)

extern "C" __global__ void affine_f64_to_f32(const double* in, i64 ld_in, float* out,
                                             i64 ld_out, int rows, int cols, const double* shift,
                                             const double* row_scale, const double* col_scale) {
  affine<double, float>(in, ld_in, out, ld_out, rows, cols, shift, row_scale, col_scale);
}

extern "C" __global__ void sum_partials_f64(const double* part, int rows, int segments,
                                            double scale, double* out) {
  sum_partials(part, rows, segments, scale, out);
}
