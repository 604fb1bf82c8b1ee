// Fused inference kernels of the diffusion models on NVIDIA GPUs, compiled at run time by NVRTC
// for the device in use. Each replaces a chain of candle's generic kernels (each a full pass
// over memory, and casts to and from f32 around the normalisations) with one or two passes.
//
// Storage types: float, and 16-bit halves and bfloats held as unsigned short and converted
// with PTX (no CUDA headers are needed at run time). Arithmetic is in f32.

typedef long long i64;
typedef unsigned short u16;
#define NEG_INF __int_as_float(0xff800000)

struct F32 {
  typedef float T;
  static __device__ __forceinline__ float load(const float* p, i64 i) { return p[i]; }
  static __device__ __forceinline__ void store(float* p, i64 i, float v) { p[i] = v; }
  // eight values at p + i, i a multiple of 8 (32-byte aligned)
  static __device__ __forceinline__ void store8(float* p, i64 i, const float* v) {
    reinterpret_cast<float4*>(p + i)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(p + i)[1] = make_float4(v[4], v[5], v[6], v[7]);
  }
};

// Eight 16-bit values packed into one 16-byte store.
__device__ __forceinline__ void store8_u16(u16* p, i64 i, const u16* h) {
  uint4 w;
  w.x = h[0] | ((unsigned int)h[1] << 16);
  w.y = h[2] | ((unsigned int)h[3] << 16);
  w.z = h[4] | ((unsigned int)h[5] << 16);
  w.w = h[6] | ((unsigned int)h[7] << 16);
  *reinterpret_cast<uint4*>(p + i) = w;
}

struct F16 {
  typedef u16 T;
  static __device__ __forceinline__ float load(const u16* p, i64 i) {
    float f;
    asm("{cvt.f32.f16 %0, %1;}" : "=f"(f) : "h"(p[i]));
    return f;
  }
  static __device__ __forceinline__ void store(u16* p, i64 i, float v) {
    u16 h;
    asm("{cvt.rn.f16.f32 %0, %1;}" : "=h"(h) : "f"(v));
    p[i] = h;
  }
  static __device__ __forceinline__ void store8(u16* p, i64 i, const float* v) {
    u16 h[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) asm("{cvt.rn.f16.f32 %0, %1;}" : "=h"(h[e]) : "f"(v[e]));
    store8_u16(p, i, h);
  }
};

struct BF16 {
  typedef u16 T;
  static __device__ __forceinline__ float load(const u16* p, i64 i) {
    return __uint_as_float(((unsigned int)p[i]) << 16);
  }
  static __device__ __forceinline__ void store(u16* p, i64 i, float v) {
    p[i] = round(v);
  }
  static __device__ __forceinline__ u16 round(float v) {
    unsigned int u = __float_as_uint(v);
    // round to nearest even; NaN stays a quiet NaN
    return (v != v) ? (u16)0x7fc0 : (u16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  static __device__ __forceinline__ void store8(u16* p, i64 i, const float* v) {
    u16 h[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) h[e] = round(v[e]);
    store8_u16(p, i, h);
  }
};

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

// Welford state: count, mean, sum of squared deviations; merged with Chan et al.'s formula.
struct Moments {
  float n, mean, m2;
};

__device__ __forceinline__ Moments merge(Moments a, Moments b) {
  float n = a.n + b.n;
  if (n == 0.0f) return a;
  float delta = b.mean - a.mean, wb = b.n / n;
  Moments r;
  r.n = n;
  r.mean = a.mean + delta * wb;
  r.m2 = a.m2 + b.m2 + delta * delta * a.n * wb;
  return r;
}

// One more value in Welford's update.
__device__ __forceinline__ Moments add(Moments m, float v) {
  m.n += 1.0f;
  float d = v - m.mean;
  m.mean += d / m.n;
  m.m2 += d * (v - m.mean);
  return m;
}

__device__ __forceinline__ Moments warp_merge(Moments m) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    Moments o;
    o.n = __shfl_down_sync(0xffffffff, m.n, offset);
    o.mean = __shfl_down_sync(0xffffffff, m.mean, offset);
    o.m2 = __shfl_down_sync(0xffffffff, m.m2, offset);
    m = merge(m, o);
  }
  return m;
}

// Moments of a block's values (blockDim.x a multiple of 32, at most 1024); valid in thread 0.
__device__ Moments block_merge(Moments m) {
  __shared__ Moments warps[32];
  m = warp_merge(m);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warps[warp] = m;
  __syncthreads();
  if (warp == 0) {
    Moments z = {0.0f, 0.0f, 0.0f};
    m = lane < (int)(blockDim.x >> 5) ? warps[lane] : z;
    m = warp_merge(m);
  }
  return m;
}

// Group norm, pass 1: moments of chunk `blockIdx.x` of group `blockIdx.y` (each group is
// `group_len` contiguous values of x), into part[group · chunks + chunk].
template <typename S>
__device__ void group_moments(const typename S::T* x, i64 group_len, int chunks, float* part) {
  i64 group = blockIdx.y, chunk = blockIdx.x;
  i64 per = (group_len + chunks - 1) / chunks;
  i64 begin = chunk * per, end = min(group_len, begin + per);
  const typename S::T* base = x + group * group_len;
  Moments m = {0.0f, 0.0f, 0.0f};
  for (i64 i = begin + threadIdx.x; i < end; i += blockDim.x) m = add(m, S::load(base, i));
  m = block_merge(m);
  if (threadIdx.x == 0) {
    i64 at = (group * chunks + chunk) * 3;
    part[at] = m.n;
    part[at + 1] = m.mean;
    part[at + 2] = m.m2;
  }
}

// Group norm, pass 2: per group (one thread each), the chunks merged in order into
// stats[2g] = mean, stats[2g+1] = 1/sqrt(var + eps) (biased variance).
__device__ void group_finish(const float* part, int groups, int chunks, float eps, float* stats) {
  int g = blockIdx.x * blockDim.x + threadIdx.x;
  if (g >= groups) return;
  Moments m = {0.0f, 0.0f, 0.0f};
  for (int c = 0; c < chunks; ++c) {
    i64 at = ((i64)g * chunks + c) * 3;
    Moments o = {part[at], part[at + 1], part[at + 2]};
    m = merge(m, o);
  }
  float var = m.n > 0.0f ? m.m2 / m.n : 0.0f;
  stats[2 * g] = m.mean;
  stats[2 * g + 1] = rsqrtf(var + eps);
}

// Group norm, pass 3: y = (x − mean_g)·rstd_g·w[c] + b[c] (then SiLU when `act`), x [B, C, plane].
// Grid: x over the plane, y over the B·C rows (grid-stride in both).
template <typename S>
__device__ void group_apply(const typename S::T* x, const typename S::T* w, const typename S::T* b,
                            const float* stats, typename S::T* y, int rows, int channels,
                            int plane, int channels_per_group, int act) {
  for (int row = blockIdx.y; row < rows; row += gridDim.y) {
    int c = row % channels;
    int g = (row / channels) * (channels / channels_per_group) + c / channels_per_group;
    float mean = stats[2 * g], rstd = stats[2 * g + 1];
    float scale = S::load(w, c) * rstd, shift = S::load(b, c) - mean * scale;
    i64 base = (i64)row * plane;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < plane; i += gridDim.x * blockDim.x) {
      float v = S::load(x, base + i) * scale + shift;
      S::store(y, base + i, act ? silu(v) : v);
    }
  }
}

// Layer norm over the last dimension (`dim` values per row, one block per row):
// y = (x − mean)/sqrt(var + eps)·w + b; w and b may be null (no affine).
template <typename S>
__device__ void layer_norm(const typename S::T* x, const typename S::T* w, const typename S::T* b,
                           typename S::T* y, int dim, float eps) {
  __shared__ float shared_stats[2];
  i64 row = blockIdx.x;
  const typename S::T* in = x + row * dim;
  typename S::T* out = y + row * dim;
  Moments m = {0.0f, 0.0f, 0.0f};
  for (int i = threadIdx.x; i < dim; i += blockDim.x) m = add(m, S::load(in, i));
  m = block_merge(m);
  if (threadIdx.x == 0) {
    shared_stats[0] = m.mean;
    shared_stats[1] = rsqrtf(m.m2 / m.n + eps);
  }
  __syncthreads();
  float mean = shared_stats[0], rstd = shared_stats[1];
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = (S::load(in, i) - mean) * rstd;
    if (w) v *= S::load(w, i);
    if (b) v += S::load(b, i);
    S::store(out, i, v);
  }
}

// y[b, c, i] = x[b, c, i]·scale[c] + shift[c] over [B, C, plane]; scale or shift may be null.
// Grid: x over the plane, y over the B·C rows. With plane 1 (a bias over the last dimension)
// the grid's x runs over the channels of each row instead.
template <typename S>
__device__ void channel_affine(const typename S::T* x, const typename S::T* scale,
                               const typename S::T* shift, typename S::T* y, int rows,
                               int channels, int plane) {
  if (plane == 1) {
    for (int row = blockIdx.y; row < rows / channels; row += gridDim.y) {
      for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < channels; c += gridDim.x * blockDim.x) {
        i64 k = (i64)row * channels + c;
        float v = S::load(x, k);
        if (scale) v *= S::load(scale, c);
        if (shift) v += S::load(shift, c);
        S::store(y, k, v);
      }
    }
    return;
  }
  for (int row = blockIdx.y; row < rows; row += gridDim.y) {
    int c = row % channels;
    float a = scale ? S::load(scale, c) : 1.0f, b = shift ? S::load(shift, c) : 0.0f;
    i64 base = (i64)row * plane;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < plane; i += gridDim.x * blockDim.x)
      S::store(y, base + i, S::load(x, base + i) * a + b);
  }
}

// Softmax of each row of `cols` values of x·scale, one warp per row, computed in f32 with an
// online maximum (one read for the statistics, one for the output).
template <typename S>
__device__ void softmax_rows(const typename S::T* x, typename S::T* y, i64 rows, int cols,
                             float scale) {
  i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const typename S::T* in = x + row * cols;
  typename S::T* out = y + row * cols;
  float max = NEG_INF, sum = 0.0f;
  for (int i = lane; i < cols; i += 32) {
    float v = S::load(in, i) * scale;
    if (v == NEG_INF) continue;
    if (v > max) {
      sum *= expf(max - v);
      max = v;
    }
    sum += expf(v - max);
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    float other_max = __shfl_xor_sync(0xffffffff, max, offset);
    float other_sum = __shfl_xor_sync(0xffffffff, sum, offset);
    float m = fmaxf(max, other_max);
    sum = (max == NEG_INF ? 0.0f : sum * expf(max - m)) +
          (other_max == NEG_INF ? 0.0f : other_sum * expf(other_max - m));
    max = m;
  }
  float inverse = 1.0f / sum;
  for (int i = lane; i < cols; i += 32) S::store(out, i, expf(S::load(in, i) * scale - max) * inverse);
}

__device__ __forceinline__ float block_reduce(float v, bool max) {
  __shared__ float partial[32];
  for (int offset = 16; offset > 0; offset >>= 1) {
    float o = __shfl_xor_sync(0xffffffff, v, offset);
    v = max ? fmaxf(v, o) : v + o;
  }
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // `partial` may still be read by the previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < (int)(blockDim.x >> 5) ? partial[lane] : (max ? NEG_INF : 0.0f);
  for (int offset = 16; offset > 0; offset >>= 1) {
    float o = __shfl_xor_sync(0xffffffff, v, offset);
    v = max ? fmaxf(v, o) : v + o;
  }
  return v;
}

// Softmax of long rows (cols ≤ 256·LONG_ROW), one block of 256 threads per row: the row stays
// in registers, so it is read once and written once.
#define LONG_ROW 16
template <typename S>
__device__ void softmax_long_rows(const typename S::T* x, typename S::T* y, int cols, float scale) {
  i64 row = blockIdx.x;
  const typename S::T* in = x + row * cols;
  typename S::T* out = y + row * cols;
  float v[LONG_ROW];
  float max = NEG_INF;
#pragma unroll
  for (int k = 0; k < LONG_ROW; ++k) {
    int i = threadIdx.x + k * 256;
    v[k] = i < cols ? S::load(in, i) * scale : NEG_INF;
    max = fmaxf(max, v[k]);
  }
  max = block_reduce(max, true);
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < LONG_ROW; ++k) {
    v[k] = v[k] == NEG_INF ? 0.0f : expf(v[k] - max);
    sum += v[k];
  }
  float inverse = 1.0f / block_reduce(sum, false);
#pragma unroll
  for (int k = 0; k < LONG_ROW; ++k) {
    int i = threadIdx.x + k * 256;
    if (i < cols) S::store(out, i, v[k] * inverse);
  }
}

// GEGLU of rows of 2·dim values: y[r, i] = x[r, i]·gelu(x[r, dim + i]), exact (erf) GELU.
// Grid: x over dim, y over rows.
template <typename S>
__device__ void geglu(const typename S::T* x, typename S::T* y, int rows, int dim) {
  for (int r = blockIdx.y; r < rows; r += gridDim.y) {
    const typename S::T* in = x + (i64)r * 2 * dim;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < dim; i += gridDim.x * blockDim.x) {
      float hidden = S::load(in, i), gate = S::load(in, dim + i);
      S::store(y, (i64)r * dim + i, hidden * 0.5f * gate * (1.0f + erff(gate * 0.70710678118654752f)));
    }
  }
}

// Columns of a convolution for one image: cols[r, p] with r = (c·kh + i)·kw + j (the weight's
// [C, kh, kw] order) and p = oy·out_w + ox over output rows first_row… (rows_out of them), so
// that weight[O, C·kh·kw] · cols = output[O, pixels]. Grid: x over pixels, y over r.
template <typename S>
__device__ void im2col(const typename S::T* x, typename S::T* cols, int channels, int height,
                       int width, int kh, int kw, int stride_h, int stride_w, int pad_h,
                       int pad_w, int out_w, int first_row, int rows_out) {
  int pixels = rows_out * out_w, taps = channels * kh * kw;
  for (int r = blockIdx.y; r < taps; r += gridDim.y) {
    int j = r % kw, i = (r / kw) % kh, c = r / (kw * kh);
    const typename S::T* plane = x + (i64)c * height * width;
    typename S::T* out = cols + (i64)r * pixels;
    for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < pixels; p += gridDim.x * blockDim.x) {
      int oy = first_row + p / out_w, ox = p % out_w;
      int iy = oy * stride_h - pad_h + i, ix = ox * stride_w - pad_w + j;
      float v = 0.0f;
      if (iy >= 0 && iy < height && ix >= 0 && ix < width) v = S::load(plane, (i64)iy * width + ix);
      S::store(out, p, v);
    }
  }
}

// im2col for out_w a multiple of 8: each thread makes eight neighbouring pixels of one output
// row and writes them with one 16-byte (two for f32) store.
template <typename S>
__device__ void im2col8(const typename S::T* x, typename S::T* cols, int channels, int height,
                        int width, int kh, int kw, int stride_h, int stride_w, int pad_h,
                        int pad_w, int out_w, int first_row, int rows_out) {
  int pixels = rows_out * out_w, taps = channels * kh * kw, groups = pixels / 8;
  for (int r = blockIdx.y; r < taps; r += gridDim.y) {
    int j = r % kw, i = (r / kw) % kh, c = r / (kw * kh);
    const typename S::T* plane = x + (i64)c * height * width;
    typename S::T* out = cols + (i64)r * pixels;
    for (int g = blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += gridDim.x * blockDim.x) {
      int p = g * 8, oy = first_row + p / out_w, ox = p % out_w;
      int iy = oy * stride_h - pad_h + i;
      bool inside = iy >= 0 && iy < height;
      float v[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        int ix = (ox + e) * stride_w - pad_w + j;
        v[e] = inside && ix >= 0 && ix < width ? S::load(plane, (i64)iy * width + ix) : 0.0f;
      }
      S::store8(out, p, v);
    }
  }
}

#define INSTANTIATE(S, N)                                                                        \
  extern "C" __global__ void group_moments_##N(const S::T* x, i64 group_len, int chunks,         \
                                               float* part) {                                    \
    group_moments<S>(x, group_len, chunks, part);                                                \
  }                                                                                              \
  extern "C" __global__ void group_apply_##N(const S::T* x, const S::T* w, const S::T* b,        \
                                             const float* stats, S::T* y, int rows,              \
                                             int channels, int plane, int channels_per_group,    \
                                             int act) {                                          \
    group_apply<S>(x, w, b, stats, y, rows, channels, plane, channels_per_group, act);           \
  }                                                                                              \
  extern "C" __global__ void layer_norm_##N(const S::T* x, const S::T* w, const S::T* b,         \
                                            S::T* y, int dim, float eps) {                       \
    layer_norm<S>(x, w, b, y, dim, eps);                                                         \
  }                                                                                              \
  extern "C" __global__ void channel_affine_##N(const S::T* x, const S::T* scale,                \
                                                const S::T* shift, S::T* y, int rows,            \
                                                int channels, int plane) {                       \
    channel_affine<S>(x, scale, shift, y, rows, channels, plane);                                \
  }                                                                                              \
  extern "C" __global__ void softmax_rows_##N(const S::T* x, S::T* y, i64 rows, int cols,        \
                                              float scale) {                                     \
    softmax_rows<S>(x, y, rows, cols, scale);                                                    \
  }                                                                                              \
  extern "C" __global__ void softmax_long_rows_##N(const S::T* x, S::T* y, int cols,         \
                                                   float scale) {                              \
    softmax_long_rows<S>(x, y, cols, scale);                                                     \
  }                                                                                              \
  extern "C" __global__ void im2col8_##N(const S::T* x, S::T* cols, int channels, int height,    \
                                         int width, int kh, int kw, int stride_h, int stride_w,  \
                                         int pad_h, int pad_w, int out_w, int first_row,         \
                                         int rows_out) {                                         \
    im2col8<S>(x, cols, channels, height, width, kh, kw, stride_h, stride_w, pad_h, pad_w,       \
               out_w, first_row, rows_out);                                                      \
  }                                                                                              \
  extern "C" __global__ void geglu_##N(const S::T* x, S::T* y, int rows, int dim) {              \
    geglu<S>(x, y, rows, dim);                                                                   \
  }                                                                                              \
  extern "C" __global__ void im2col_##N(const S::T* x, S::T* cols, int channels, int height,     \
                                        int width, int kh, int kw, int stride_h, int stride_w,   \
                                        int pad_h, int pad_w, int out_w, int first_row,          \
                                        int rows_out) {                                          \
    im2col<S>(x, cols, channels, height, width, kh, kw, stride_h, stride_w, pad_h, pad_w, out_w, \
              first_row, rows_out);                                                              \
  }

INSTANTIATE(F32, f32)
INSTANTIATE(F16, f16)
INSTANTIATE(BF16, bf16)

extern "C" __global__ void group_finish_f32(const float* part, int groups, int chunks, float eps,
                                            float* stats) {
  group_finish(part, groups, chunks, eps, stats);
}
