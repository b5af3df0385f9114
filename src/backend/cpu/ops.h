// The non-matmul ops of the fast CPU backend (cpu_backend.h), one function per op, defined
// in the file of its family: rows.cpp (get_rows), norm.cpp (rms_norm),
// elementwise.cpp (add, scale, swiglu), rope.cpp, attention.cpp (store_kv, attention). Each
// checks its arguments with the shared checks (backend/op_checks.h, the same messages as
// cpu_ref), then computes on the context's ISA path and thread pool. Every output row is the
// work of one task in a fixed order, so results do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/isa.h"
#include "backend/cpu/op_kernels.h"
#include "core/thread_pool.h"

namespace strata::cpu {

struct OpContext {
  Isa isa;
  const OpKernels* k;  // op_kernels(isa)
  ThreadPool* pool;
};

// The fast backend's type check (op_checks.h TypeCheck): a type with a reference dequantize.
void check_dequantizable(std::string_view op, std::string_view role, const Tensor& t);

// The angles of rope for the positions of the last call, kept while the positions and the
// config stay the same (the q and k of every layer of one forward pass share them).
class RopeTable {
public:
  // [n_tokens][n_rot / 2] pairs (cos theta, sin theta), theta as rope.cpp defines it.
  const float* cos_sin(std::span<const int32_t> positions, const RopeConfig& config);

private:
  RopeConfig config_;
  std::vector<double> inv_freq_;  // [n_rot / 2] freq_base^(-2i/n_rot)
  std::vector<int32_t> positions_;
  std::vector<float> table_;
  bool valid_ = false;
};

void get_rows(const OpContext& ctx, const Tensor& table, std::span<const int32_t> ids, Tensor& out);
void rms_norm(const OpContext& ctx, const Tensor& x, const Tensor& weight, float eps, Tensor& out);
void add(const OpContext& ctx, const Tensor& a, const Tensor& b, Tensor& out);
void swiglu(const OpContext& ctx, const Tensor& gate, const Tensor& up, Tensor& out);
void geglu(const OpContext& ctx, const Tensor& gate, const Tensor& up, Tensor& out);
void scale(const OpContext& ctx, const Tensor& x, float s, Tensor& out);
void rope(const OpContext& ctx, RopeTable& table, Tensor& x, std::span<const int32_t> positions,
          const RopeConfig& config);
void store_kv(const OpContext& ctx, const Tensor& src, Tensor& cache, const KvLayout& kv);
// Turns one head x [n_rot (+ more, kept)] in place as rope does; cs: [half] (cos, sin) pairs of
// its position (RopeTable::cos_sin), half = n_rot / 2.
void rotate_head(float* x, const float* cs, int64_t half, bool neox);
void attention(const OpContext& ctx, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv,
               float scale, int64_t window, Tensor& out);

// ---- helpers of the op files -----------------------------------------------------------

// Flat row r of a tensor (i1 fastest, as cpu_ref's checks.h defines it), by address.
struct Rows {
  explicit Rows(const Tensor& t)
      : data(t.data()), ne1(t.ne(1)), ne2(t.ne(2)), nb1(t.nb(1)), nb2(t.nb(2)), nb3(t.nb(3)) {}
  const uint8_t* at(int64_t r) const {
    const int64_t i1 = r % ne1, i2 = (r / ne1) % ne2, i3 = r / (ne1 * ne2);
    return data + size_t(i1) * nb1 + size_t(i2) * nb2 + size_t(i3) * nb3;
  }
  const float* f32(int64_t r) const { return reinterpret_cast<const float*>(at(r)); }
  // For outputs already checked writable (check_f32_output or the op's own check).
  float* mutable_f32(int64_t r) const { return const_cast<float*>(f32(r)); }

  const uint8_t* data;
  int64_t ne1, ne2;
  size_t nb1, nb2, nb3;
};

// Calls fn(first, last) over [0, n) in contiguous chunks of at least `min_items` items (one
// chunk, on the calling thread, when n < 2 * min_items), spread over the pool.
template <typename Fn>
void parallel_chunks(ThreadPool& pool, int64_t n, int64_t min_items, const Fn& fn) {
  if (n <= 0) return;
  const int64_t by_size = std::max<int64_t>(1, n / std::max<int64_t>(min_items, 1));
  const int64_t n_chunks = std::min<int64_t>(by_size, 4 * int64_t(pool.n_threads()));
  if (n_chunks == 1) {
    fn(int64_t(0), n);
    return;
  }
  pool.run(n_chunks, [&](int64_t c, int) { fn(c * n / n_chunks, (c + 1) * n / n_chunks); });
}

// Rows of n elements per chunk so that each chunk has about kMinChunkElements elements.
inline constexpr int64_t kMinChunkElements = 16384;
inline int64_t min_rows(int64_t n) {
  return std::max<int64_t>(1, kMinChunkElements / std::max<int64_t>(n, 1));
}

}  // namespace strata::cpu
