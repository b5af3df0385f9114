// The decode matrix-vector kernel of matmul_vec_fast.cu (f32 x) and matmul_vec_q8.cu (x in
// its q8 form): the kernel template, its launch shapes and the helpers both families of
// per-type pieces use. A piece type T supplies kLanes, kElems, kManyRows (or
// kFewRows), kSlab, kUnroll and accumulate<R, M, kSharedX>(rows, b, t, x, x_stride, m, acc);
// kQ8 marks the pieces that multiply XQ8 (m = 1 only).
#pragma once

#include <concepts>
#include <cstdlib>
#include <type_traits>

#include "backend/cuda/matmul_vec.cuh"
#include "backend/cuda/norm.cuh"
#include "backend/cuda/rope.cuh"

namespace strata::cuda::fast_vec {

inline constexpr int kFastWarps = 4;  // warps per CTA; they split the blocks of its R rows

// Element e (0..3) of a word of 4 bytes, each holding a small unsigned integer q, as the
// float 2^23 + q (subtract 2^23 + offset to get q - offset exactly).
__device__ __forceinline__ float magic_byte(uint32_t w, int e) {
  return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7650u + unsigned(e)));
}
inline constexpr float kMagic = 8388608.0f;  // 2^23

__device__ __forceinline__ uint32_t load_u32_2(const uint8_t* p) {  // 2-byte aligned
  return uint32_t(load_u16(p)) | uint32_t(load_u16(p + 2)) << 16;
}
// 4 bytes of quantized values of a row of format F (quant_decode.cuh's offsets, plus a multiple
// of 4): 4-byte aligned where grouped, else 2-byte.
template <RowFormat F>
__device__ __forceinline__ uint32_t load_row_word(const uint8_t* p) {
  if constexpr (F == RowFormat::grouped8) {
    return *reinterpret_cast<const uint32_t*>(p);
  } else {
    return load_u32_2(p);
  }
}

// The 6-bit values (0..63) of 4 Q6_K elements, one per byte, for the k (0..3) of their group:
// low bits nibble k >> 1 of the bytes of lw (from ql), high bits 2k, 2k + 1 of those of hw (qh).
__device__ __forceinline__ uint32_t q6_k_word(uint32_t lw, uint32_t hw, int k) {
  return ((lw >> (4 * (k >> 1))) & 0x0F0F0F0Fu) | (((hw >> (2 * k)) & 0x03030303u) << 4);
}

// The 6-bit scales and mins of sub-blocks 2p and 2p + 1 (p = 0..3) of a Q4_K block, from its
// 12 scale bytes as the words s0, s1, s2 (core/k_scales.h's layout): byte h of sc and mn holds
// sub-block 2p + h's scale and min. Two bytes at a time, one select instead of a branch.
__device__ __forceinline__ void q4k_scale_min_pair(uint32_t s0, uint32_t s1, uint32_t s2, int p, uint32_t& sc,
                                                   uint32_t& mn) {
  const int sh = 16 * (p & 1);
  const uint32_t a = s0 >> sh, b = s1 >> sh, c = s2 >> sh;
  const uint32_t sc_lo = a & 0x3f3fu, mn_lo = b & 0x3f3fu;      // p = 0, 1
  const uint32_t sc_hi = (c & 0x0f0fu) | ((a >> 2) & 0x3030u);  // p = 2, 3
  const uint32_t mn_hi = ((c >> 4) & 0x0f0fu) | ((b >> 2) & 0x3030u);
  sc = p < 2 ? sc_lo : sc_hi;
  mn = p < 2 ? mn_lo : mn_hi;
}

// The x a piece type multiplies: f32 values, or (types with kQ8) their q8 form (XQ8), m = 1.
template <typename T>
constexpr bool q8_piece() {
  if constexpr (requires { T::kQ8; }) {
    return T::kQ8;
  } else {
    return false;
  }
}
template <typename T>
concept Q8Piece = q8_piece<T>();
template <typename T>
using InputOf = std::conditional_t<Q8Piece<T>, XQ8, const float*>;

// Two piece types in one launch (the q/k/v launch of a Q4_K_M file: Q4_K q and k, Q6_K v):
// jobs 0 .. first_b - 1 (FastJobs) take A, the others B. A and B share kLanes and kElems, so
// a CTA's lanes take the same blocks whichever it runs; m = 1 (q8 pieces).
template <typename A, typename B>
struct PiecePair {
  static_assert(A::kLanes == B::kLanes && A::kElems == B::kElems && Q8Piece<A> && Q8Piece<B>);
  using First = A;
  using Second = B;
  static constexpr bool kQ8 = true;
  static constexpr int kLanes = A::kLanes, kElems = A::kElems;
  static constexpr bool kManyRows = A::kManyRows && B::kManyRows;
  static constexpr bool kSlab = A::kSlab && B::kSlab;
  static constexpr int kUnroll = 1;  // unused: each piece's own
};
template <typename T>
concept PairPiece = requires {
  typename T::Second;
};

// The block loop of a CTA's R rows on piece type P: warp w's lanes take blocks
// w * (32 / kLanes) + lane / kLanes, stepping by the CTA's blocks per step.
template <typename P, int U, int R, int M, bool kSharedX>
__device__ __forceinline__ void block_loop(const uint8_t* const (&rows)[R], int n_blocks, InputOf<P> x,
                                           int64_t x_stride, int m, float (&acc)[R][M]) {
  constexpr int kBlocksPerWarp = kWarp / P::kLanes, kStep = kBlocksPerWarp * kFastWarps;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, t = lane % P::kLanes;
#pragma unroll U
  for (int b = warp * kBlocksPerWarp + lane / P::kLanes; b < n_blocks; b += kStep) {
    P::template accumulate<R, M, kSharedX>(rows, b, t, x, x_stride, m, acc);
  }
}

// ---- the kernel -------------------------------------------------------------------------------
// x (k floats, rms_norm's input) normalized into `shared` (16-byte aligned, k floats) by the
// CTA, and by CTA 0 also into norm.normed, with the rms_norm kernel's arithmetic (norm.cuh);
// the copy in shared memory is what the CTA multiplies.
__device__ __forceinline__ const float* normalized_input(const VecNorm& norm, const float* x, int64_t k,
                                                         uint8_t* shared) {
  __shared__ float scratch[kWarp];
  const auto* x4 = reinterpret_cast<const float4*>(x);
  const auto* w4 = reinterpret_cast<const float4*>(norm.weight);
  auto* s4 = reinterpret_cast<float4*>(shared);
  const float inv_rms = inverse_rms(row_sum_squares(x4, k / 4, scratch), k, norm.eps);
  for (int64_t i = threadIdx.x; i < k / 4; i += blockDim.x) {
    const float4 v = normalize4(x4[i], inv_rms, w4[i]);
    s4[i] = v;
    if (blockIdx.x == 0) reinterpret_cast<float4*>(norm.normed)[i] = v;
  }
  __syncthreads();
  return reinterpret_cast<const float*>(shared);
}

// One launch computes the rows of one or more jobs (matrices of one type and k, multiplied
// by the same x): CTAs first_cta .. of job q compute its rows in groups of R. CTA c of a job
// computes rows c R .. c R + R - 1 (rows past n repeat row n - 1 and are not written). Warp
// w's lanes take blocks w * (32 / kLanes) + lane / kLanes, stepping by the CTA's blocks per
// step; the warps' sums meet in shared memory. A row's sum does not depend on R, M or the
// job it is in (the same lanes add the same pieces in the same order), so every launch shape
// gives the same bits.
// Epilogues: out[row] = sum, and with acc also acc[row] = acc[row] + sum (matmul_add, as the
// add kernel computes it). kSwiglu: jobs 0 (gate) and 1 (up) of the same n; a CTA takes R/2
// rows of each, writes both sums and act[row] = silu(gate) * up (as the swiglu kernel does).
// A job with a role (kernels.h: VecRole; m = 1, R even, so that rows 2i and 2i + 1 are in
// one CTA) ropes and stores its rows as the rope and store_kv kernels do (rope_store_row).
// The kernel's parameter: the jobs (kernels.h: VecJob, first_cta set by launch_fast_rm) and
// what the launch shares.
struct FastJobs {
  VecJob job[kMaxVecJobs];
  int n_jobs;
  float* act;  // kSwiglu's output
  int64_t act_stride;
  VecNorm norm;  // kNorm: x is normalized first (weight, eps; normed written by CTA 0)
  int first_b;   // PiecePair: the first job of its second piece type
  VecRope rope;  // kRoles: the arguments of the jobs' roles
};
static_assert(sizeof(VecJob) == 64, "a job takes 64 bytes of the kernel's parameter (kMaxVecJobs of them)");

// The bytes of a job's weight rows.
__host__ __device__ __forceinline__ const uint8_t* weight_bytes(const VecJob& j) {
  return static_cast<const uint8_t*>(j.w);
}

inline bool any_role(const FastJobs& jobs) {
  for (int q = 0; q < jobs.n_jobs; ++q) {
    if (jobs.job[q].role != VecRole::plain) return true;
  }
  return false;
}
// The roles' arguments are complete: whole heads of pairs, and the caches the roles store to.
inline bool roles_valid(const FastJobs& jobs) {
  const VecRope& r = jobs.rope;
  if (r.positions == nullptr || r.theta_scale == nullptr || r.head_dim <= 0 || r.head_dim % 2 != 0 ||
      r.n_rot % 2 != 0 || r.n_rot > r.head_dim) {
    return false;
  }
  for (int q = 0; q < jobs.n_jobs; ++q) {
    const VecJob& j = jobs.job[q];
    const VecRole role = j.role;
    if (role == VecRole::plain) continue;
    if (j.n % r.head_dim != 0 || j.acc != nullptr || (role == VecRole::rope_store_k && r.k_cache == nullptr) ||
        (role == VecRole::store_v && r.v_cache == nullptr)) {
      return false;
    }
    const RowLayout& cache = role == VecRole::store_v ? r.lvc : r.lkc;  // rope_store_row's addressing
    if (role != VecRole::rope && cache.ne1 != j.n / r.head_dim) return false;
  }
  return true;
}

// What the epilogue of row `row` of a job with a role needs besides the sums: the cos and sin
// of its rope angle (where the role turns the row) and the cache position (where it stores).
// Computed at the kernel's start, before the wait (the positions and the rope table are not
// written by kernels: kernels.h, VecRope), and kept in shared memory: so neither their loads
// nor the double-precision sincos sit on the CTA's tail, and they hold no registers across
// the block loop (in registers, next to the block loop's live values, they would cost the
// q/k/v launches registers and so CTAs per SM; docs/benchmarks.md).
struct RopeInputs {
  float2 cos_sin;
  int64_t pos;
};
__device__ __forceinline__ RopeInputs rope_inputs(const VecRope& rp, VecRole role, int64_t row) {
  const int d = int(row) % int(rp.head_dim);  // 32-bit: a 64-bit division costs dozens of instructions
  RopeInputs in{make_float2(1.0f, 0.0f), 0};
  if (role != VecRole::store_v && d < rp.n_rot) in.cos_sin = rope_cos_sin(double(*rp.positions), rp.theta_scale[d / 2]);
  if (role != VecRole::rope) in.pos = rp.pos_dev != nullptr ? int64_t(*rp.pos_dev) : rp.pos;
  return in;
}

// Row `row` of a job with a role, its sum s, the sum of its pair's other row and its
// rope_inputs: the value written to out (turned where the role ropes and the row is among its
// head's first n_rot), also stored in the cache where the role stores.
__device__ __forceinline__ float rope_store_row(const VecRope& rp, VecRole role, int64_t row, float s, float other,
                                                const RopeInputs& in) {
  const int head_dim = int(rp.head_dim);
  const int d = int(row) % head_dim;
  float value = s;
  if (role != VecRole::store_v && d < rp.n_rot) {
    const bool first = d % 2 == 0;  // row 2i of pair i
    const float2 turned = rope_turn(first ? s : other, first ? other : s, in.cos_sin);
    value = first ? turned.x : turned.y;
  }
  if (role != VecRole::rope) {
    const bool v = role == VecRole::store_v;
    // The cache [head_dim, n / head_dim, n_ctx] (roles_valid): row (head, pos) at head nb1 + pos nb2.
    const RowLayout& layout = v ? rp.lvc : rp.lkc;
    char* cache_row =
        static_cast<char*>(v ? rp.v_cache : rp.k_cache) + (int(row) / head_dim) * layout.nb1 + in.pos * layout.nb2;
    if (rp.cache_f16) {
      reinterpret_cast<__half*>(cache_row)[d] = __float2half_rn(value);
    } else {
      reinterpret_cast<float*>(cache_row)[d] = value;
    }
  }
  return value;
}

// kNorm (m = 1): x is rms_norm's input; every CTA normalizes it into shared memory with the
// rms_norm kernel's arithmetic (norm.cuh) and multiplies that, and CTA 0 writes it to normed.
// Dynamic shared memory: the slab (kSlab: R rows), then the normalized x (kNorm: k floats).
// kRoles (M = 1, not kSwiglu): the jobs may have roles (the q/k/v launch of
// rms_norm_qkv_rope_store_kv); a kernel of its own, so that the rope's double-precision
// sincos does not cost the other launches registers.
template <typename T, int R, int M, int U, bool kSwiglu, bool kSlab, bool kNorm, bool kRoles>
__global__ void __launch_bounds__(kFastWarps* kWarp)
    matvec_fast_kernel(FastJobs jobs, int n_blocks, InputOf<T> x, int64_t x_stride, int m) {
  static_assert(!kNorm || (M == 1 && kFastWarps * kWarp == kNormRowThreads));
  static_assert(!kRoles || (M == 1 && !kSwiglu && R % 2 == 0));
  extern __shared__ __align__(16) uint8_t dynamic_shared[];
  constexpr int kJobRows = kSwiglu ? R / 2 : R;  // rows of one job per CTA
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  VecJob job = jobs.job[0];
  int job_index = 0;  // read by kRoles and PiecePair
  if constexpr (!kSwiglu) {
#pragma unroll
    for (int q = 1; q < kMaxVecJobs; ++q) {
      if (q < jobs.n_jobs && int(blockIdx.x) >= jobs.job[q].first_cta) job = jobs.job[q], job_index = q;
    }
  }
  const int64_t n = job.n;
  const int64_t row0 = int64_t(int(blockIdx.x) - job.first_cta) * kJobRows;
  __shared__ RopeInputs rope_in[kRoles ? kJobRows : 1];  // rope_inputs of the CTA's rows
  if constexpr (kRoles) {
    const VecRole role = jobs.job[job_index].role;
    if (role != VecRole::plain && int(threadIdx.x) < kJobRows && row0 + threadIdx.x < n) {
      rope_in[threadIdx.x] = rope_inputs(jobs.rope, role, row0 + threadIdx.x);
    }
  }
  __shared__ float acc_in[kSwiglu ? 1 : kJobRows * M];  // kSlab: the epilogue's acc values
  const uint8_t* rows[R];
  if constexpr (kSlab) {
    // The CTA's rows (kJobRows of each job it reads: one, or gate and up) are consecutive in
    // memory: copy them into shared memory before waiting for the previous kernel, whose
    // outputs they are not, and read them from there: one copy on one barrier (copies of
    // single block steps on barriers of their own cost more than their early start saves).
    uint8_t* slab = dynamic_shared;
    __shared__ SharedBarrier slab_ready;
    const int valid = int(n - row0 < kJobRows ? n - row0 : kJobRows);
    const uint32_t bytes = uint32_t(valid * job.row_bytes);
    if (threadIdx.x == 0) {
      bulk_arm(&slab_ready, kSwiglu ? 2 * bytes : bytes);
      bulk_copy(slab, weight_bytes(job) + size_t(row0) * job.row_bytes, bytes, &slab_ready);
      if (kSwiglu) {
        bulk_copy(slab + kJobRows * job.row_bytes, weight_bytes(jobs.job[1]) + size_t(row0) * job.row_bytes, bytes,
                  &slab_ready);
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int in_job = r % kJobRows < valid ? r % kJobRows : valid - 1;
      rows[r] = slab + size_t((r / kJobRows) * kJobRows + in_job) * job.row_bytes;
    }
    __syncthreads();  // the barrier is initialized
    start_after_previous_kernel();
    // The epilogue's acc value (matmul_add), read while the slab lands and kept in shared
    // memory, so that the CTA's tail does not wait for it (an L2 round trip under the load of
    // the weight stream).
    const int64_t acc_row = row0 + int(threadIdx.x) / M;
    const int acc_j = int(threadIdx.x) % M;
    const bool stage_acc =
        !kSwiglu && job.acc != nullptr && int(threadIdx.x) < kJobRows * M && acc_j < m && acc_row < n;
    if (stage_acc) acc_in[threadIdx.x] = job.acc[acc_j * job.acc_stride + acc_row];
    if constexpr (kNorm) x = normalized_input(jobs.norm, x, n_blocks * T::kElems, dynamic_shared + R * job.row_bytes);
    bulk_wait(&slab_ready);
  } else {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t row = row0 + r % kJobRows;
      const uint8_t* w = kSwiglu && r >= kJobRows ? weight_bytes(jobs.job[1]) : weight_bytes(job);
      rows[r] = w + size_t(row < n ? row : n - 1) * job.row_bytes;
    }
    start_after_previous_kernel();
    if constexpr (kNorm) x = normalized_input(jobs.norm, x, n_blocks * T::kElems, dynamic_shared);
  }
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int j = 0; j < M; ++j) acc[r][j] = 0.0f;
  }
  if constexpr (PairPiece<T>) {
    using A = typename T::First;
    using B = typename T::Second;
    if (job_index < jobs.first_b) {
      block_loop<A, A::kUnroll, R, M, kNorm>(rows, n_blocks, x, x_stride, m, acc);
    } else {
      block_loop<B, B::kUnroll, R, M, kNorm>(rows, n_blocks, x, x_stride, m, acc);
    }
  } else {
    block_loop<T, U, R, M, kNorm>(rows, n_blocks, x, x_stride, m, acc);
  }
  __shared__ float partial[kFastWarps][R * M];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int j = 0; j < M; ++j) {
      const float s = warp_sum(acc[r][j]);
      if (lane == 0) partial[warp][r * M + j] = s;
    }
  }
  __syncthreads();
  if (threadIdx.x >= kJobRows * M) return;
  const int r = int(threadIdx.x) / M, j = int(threadIdx.x) % M;
  const int64_t row = row0 + r;
  if (j >= m || row >= n) return;
  float s = 0.0f;
#pragma unroll
  for (int v = 0; v < kFastWarps; ++v) s += partial[v][r * M + j];
  if constexpr (kRoles) {
    const VecRole role = jobs.job[job_index].role;
    if (role != VecRole::plain) {
      float other = 0.0f;  // the sum of row ^ 1 (the same additions as its own thread's)
#pragma unroll
      for (int v = 0; v < kFastWarps; ++v) other += partial[v][(r ^ 1) * M + j];
      s = rope_store_row(jobs.rope, role, row, s, other, rope_in[r]);  // written by this thread (M = 1)
    }
  }
  job.out[j * job.out_stride + row] = s;
  if constexpr (kSwiglu) {
    float u = 0.0f;
#pragma unroll
    for (int v = 0; v < kFastWarps; ++v) u += partial[v][(kJobRows + r) * M + j];
    jobs.job[1].out[j * jobs.job[1].out_stride + row] = u;
    const float silu = s / (1.0f + expf(-s));
    jobs.act[j * jobs.act_stride + row] = silu * u;
  } else {
    if (job.acc != nullptr) {
      float* a = job.acc + j * job.acc_stride + row;
      *a = (kSlab ? acc_in[threadIdx.x] : *a) + s;
    }
  }
}

// The slab path (a CTA's rows copied to shared memory before the previous kernel ends, so
// that the weights stream in while it finishes) takes the types with T::kSlab, rows that are
// 16-byte aligned, and at most kMaxSlabBytes per CTA (R rows of the longest). F16 and Q8_0
// rows are read directly: the slab slows F16 down and does not speed Q8_0 up. Larger slabs
// cut the CTAs per SM and leave the L1 too small for x; 20 KB admits Q4_K gate/up at 8 rows
// of 4096 (launch_fast_swiglu). Figures in docs/benchmarks.md.
// STRATA_MATVEC_SLAB=0 turns the path off (for comparisons).
inline constexpr size_t kMaxSlabBytes = 20 * 1024;
// The longest x that the CTAs normalize themselves (VecNorm): kMaxNormColumn (norm.cuh).
// Each CTA reads x and the norm weight, 8 k bytes, from the L2: on Q4_0 rows at 4 per CTA
// that is 3.6 times the weight bytes. At k = 2048 that costs less than the rms_norm launch it
// saves, at k = 4096 more, so longer rows take the rms_norm kernel (docs/benchmarks.md).
inline bool slab_enabled() {
  static const bool on = [] {
    const char* e = bench_switch("STRATA_MATVEC_SLAB");
    int device = 0, major = 0;
    const bool hopper = cudaGetDevice(&device) == cudaSuccess &&
                        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
                        major >= 9;  // the bulk copies (common.cuh)
    return hopper && (e == nullptr || e[0] != '0');
  }();
  return on;
}
inline bool takes_slab(const FastJobs& jobs) {
  for (int q = 0; q < jobs.n_jobs; ++q) {
    const VecJob& j = jobs.job[q];
    if (reinterpret_cast<uintptr_t>(j.w) % 16 != 0 || j.row_bytes % 16 != 0) return false;
  }
  return true;
}
inline size_t max_row_bytes(const FastJobs& jobs) {
  size_t bytes = 0;
  for (int q = 0; q < jobs.n_jobs; ++q) bytes = jobs.job[q].row_bytes > bytes ? jobs.job[q].row_bytes : bytes;
  return bytes;
}

template <typename T, int R, int M, bool kSwiglu>
cudaError_t launch_fast_rm(FastJobs jobs, int64_t k, InputOf<T> x, int64_t x_stride, int m, cudaStream_t stream) {
  constexpr int kJobRows = kSwiglu ? R / 2 : R;
  int64_t ctas = 0;
  for (int q = 0; q < jobs.n_jobs; ++q) {
    jobs.job[q].first_cta = int(ctas);
    ctas += ceil_div(jobs.job[q].n, kJobRows);
  }
  if (kSwiglu) ctas = ceil_div(jobs.job[0].n, kJobRows);
  if (ctas == 0) return cudaSuccess;
  if (ctas > int64_t(INT32_MAX)) return cudaErrorInvalidValue;
  const dim3 grid{unsigned(ctas)}, block{unsigned(kFastWarps * kWarp)};
  auto go = [&](auto kernel, size_t shared_bytes) {
    return launch(kernel, grid, block, shared_bytes, stream, jobs, int(k / T::kElems), x, x_stride, m);
  };
  const bool norm = jobs.norm.weight != nullptr;
  const size_t slab_bytes = size_t(R) * max_row_bytes(jobs), x_bytes = norm ? size_t(k) * sizeof(float) : 0;
  constexpr bool kNormShape = M == 1 && !Q8Piece<T>;  // the shapes that normalize x (dispatch_fast checks m)
  if (norm && !kNormShape) return cudaErrorNotSupported;
  auto pick = [&](auto roles) {  // the kernel for the path (slab, norm) and roles
    constexpr bool kRoles = decltype(roles)::value;
    if constexpr (T::kSlab) {
      if (slab_enabled() && slab_bytes <= kMaxSlabBytes && takes_slab(jobs)) {
        if constexpr (kNormShape) {
          if (norm) {
            return go(matvec_fast_kernel<T, R, M, T::kUnroll, kSwiglu, true, true, kRoles>, slab_bytes + x_bytes);
          }
        }
        return go(matvec_fast_kernel<T, R, M, T::kUnroll, kSwiglu, true, false, kRoles>, slab_bytes);
      }
    }
    if constexpr (kNormShape) {
      if (norm) return go(matvec_fast_kernel<T, R, M, T::kUnroll, kSwiglu, false, true, kRoles>, x_bytes);
    }
    return go(matvec_fast_kernel<T, R, M, T::kUnroll, kSwiglu, false, false, kRoles>, 0);
  };
  if (!any_role(jobs)) return pick(std::false_type{});
  if constexpr (M == 1 && !kSwiglu && R % 2 == 0) {
    if (m == 1 && roles_valid(jobs)) return pick(std::true_type{});
  }
  return cudaErrorNotSupported;
}

// Unrolling of the block loop (T::kUnroll): 4 for Q4_0, Q4_K and Q8_0 (more loads in
// flight), 2 for Q6_K and F16, 1 for Q4_K's 8-lane kernel (unrolled, its registers cut the
// warps in flight); each type's fastest (docs/benchmarks.md).
// Rows per CTA for m = 1: for the types with kManyRows (Q4_0, Q4_K) 4 when there are rows
// enough to fill the GPU with them (each x load then serves 4 rows), fewer for small n;
// kFewRows for the others (1 for Q8_0 and Q6_K, 2 for F16: with more, their registers cut the
// number of warps in flight). Several columns: fewer rows (registers).
// n: the rows of all jobs together. SwiGLU launches take 2 rows (one of gate, one of up), or
// 4 for the kManyRows types at m = 1 when n >= 2048, 8 where those rows go through the slab
// and 8 of them fit it (more bytes in flight per CTA: its registers, not its slab, cap the
// CTAs per SM); rows read directly keep 4, which is faster for them (docs/benchmarks.md).
// Rows per CTA at m = 1 where jobs have roles (pairs of rows in one CTA): R rounded up to even.
template <typename T>
constexpr int paired_rows() {
  if constexpr (T::kManyRows) {
    return 2;
  } else {
    return T::kFewRows + T::kFewRows % 2;
  }
}

template <typename T>
cudaError_t launch_fast(const FastJobs& jobs, int64_t n, int64_t k, InputOf<T> x, int64_t x_stride, int m,
                        cudaStream_t stream) {
  if (m == 1) {
    if (any_role(jobs) && (!T::kManyRows || n < 1024)) {  // rows in pairs
      return launch_fast_rm<T, paired_rows<T>(), 1, false>(jobs, k, x, x_stride, m, stream);
    }
    if constexpr (!T::kManyRows) {
      return launch_fast_rm<T, T::kFewRows, 1, false>(jobs, k, x, x_stride, m, stream);
    } else if (n >= 4096) {
      return launch_fast_rm<T, 4, 1, false>(jobs, k, x, x_stride, m, stream);
    } else if (n >= 1024) {
      return launch_fast_rm<T, 2, 1, false>(jobs, k, x, x_stride, m, stream);
    } else {
      return launch_fast_rm<T, 1, 1, false>(jobs, k, x, x_stride, m, stream);
    }
  } else if constexpr (Q8Piece<T>) {
    return cudaErrorNotSupported;
  } else if (m == 2) {
    return launch_fast_rm<T, 2, 2, false>(jobs, k, x, x_stride, m, stream);
  } else if (m <= 4) {
    return launch_fast_rm<T, 2, 4, false>(jobs, k, x, x_stride, m, stream);
  } else {
    return launch_fast_rm<T, 1, 8, false>(jobs, k, x, x_stride, m, stream);
  }
}

template <typename T>
cudaError_t launch_fast_swiglu(const FastJobs& jobs, int64_t n, int64_t k, InputOf<T> x, int64_t x_stride, int m,
                               cudaStream_t stream) {
  if (m == 1) {
    if constexpr (T::kManyRows && T::kSlab) {
      if (n >= 2048 && slab_enabled() && takes_slab(jobs) && 8 * jobs.job[0].row_bytes <= kMaxSlabBytes) {
        return launch_fast_rm<T, 8, 1, true>(jobs, k, x, x_stride, m, stream);
      }
    }
    if (T::kManyRows && n >= 2048) return launch_fast_rm<T, 4, 1, true>(jobs, k, x, x_stride, m, stream);
    return launch_fast_rm<T, 2, 1, true>(jobs, k, x, x_stride, m, stream);
  } else if constexpr (Q8Piece<T>) {
    return cudaErrorNotSupported;
  } else if (m == 2) {
    return launch_fast_rm<T, 2, 2, true>(jobs, k, x, x_stride, m, stream);
  } else if (m <= 4) {
    return launch_fast_rm<T, 2, 4, true>(jobs, k, x, x_stride, m, stream);
  } else {
    return launch_fast_rm<T, 2, 8, true>(jobs, k, x, x_stride, m, stream);
  }
}

inline bool aligned(const void* p, size_t a) {
  return reinterpret_cast<uintptr_t>(p) % a == 0;
}

// Whether every job's rows start at multiples of a bytes (what a piece type's loads need).
inline bool rows_aligned(const FastJobs& jobs, size_t a) {
  for (int q = 0; q < jobs.n_jobs; ++q) {
    if (!aligned(jobs.job[q].w, a) || jobs.job[q].row_bytes % a != 0) return false;
  }
  return true;
}

// The jobs (with swiglu: gate and up) launched on piece type T, or cudaErrorNotSupported
// where k is not a whole number of its blocks.
template <typename T>
cudaError_t launch_jobs(FastJobs& jobs, int64_t k, InputOf<T> x, int64_t x_stride, int m, bool swiglu,
                        cudaStream_t stream) {
  if (k % T::kElems != 0) return cudaErrorNotSupported;
  int64_t n = 0;  // the rows of all jobs
  for (int q = 0; q < jobs.n_jobs; ++q) n += jobs.job[q].n;
  cudaError_t launched = cudaErrorNotSupported;
  if (!swiglu) {
    launched = launch_fast<T>(jobs, n, k, x, x_stride, m, stream);
  } else if constexpr (!PairPiece<T>) {  // gate and up are of one type
    launched = launch_fast_swiglu<T>(jobs, jobs.job[0].n, k, x, x_stride, m, stream);
  }
  return launched != cudaSuccess ? launched : cudaGetLastError();
}

// The launch arguments of the public launchers (kernels.h): n_jobs jobs with their roles, or
// gate and up with act (false: the kernels do not take them).
inline bool make_jobs(const VecJob* jobs, int n_jobs, const VecNorm* norm, const VecRope* rope, FastJobs& fast) {
  if (n_jobs < 1 || n_jobs > kMaxVecJobs) return false;
  fast = FastJobs{};
  if (norm != nullptr) fast.norm = *norm;
  if (rope != nullptr) fast.rope = *rope;
  fast.n_jobs = n_jobs;
  for (int q = 0; q < n_jobs; ++q) fast.job[q] = jobs[q], fast.job[q].first_cta = 0;
  return true;
}
inline bool make_swiglu_jobs(const VecJob& gate, const VecJob& up, float* act, int64_t act_stride, const VecNorm* norm,
                             FastJobs& fast) {
  if (gate.n != up.n || gate.row_bytes != up.row_bytes || gate.acc != nullptr || up.acc != nullptr) return false;
  const VecJob both[] = {gate, up};
  make_jobs(both, 2, norm, nullptr, fast);
  fast.act = act;
  fast.act_stride = act_stride;
  return true;
}

}  // namespace strata::cuda::fast_vec
