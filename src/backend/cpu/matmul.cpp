// The matmul driver (matmul.h): matmul() is matmul_groups() of one product.
//
//  1. x's m columns are converted once into each activation form the products' kernels read
//     (ActFormat; threaded over columns); f32 columns that are evenly spaced are used in place.
//     With two-term activations (MatmulConfig::two_term) each column of x is followed by
//     its rounding residual in the same form, and a kernel call takes both terms of its
//     columns over the same weights (the sum of the two outputs is the product).
//  2. Each group's output [n, m] is cut into tasks of (row block x column block); the tasks
//     of all groups make one run of the pool, and a task computes its block of every product
//     of its group, then calls the epilogue on it. A
//     task calls the type's tile kernel for max_rows x max_cols tiles: the rows of a tile
//     stay in L1 while it walks the block's columns, and consecutive tasks share a row block.
//     Decode (m = 1) is the same with one column block, i.e. row chunks.
//     Prompts of the legacy types on a path with packed kernels (packed_gemm.h) take all
//     columns in one block instead: a task repacks its rows 16 at a time (per-thread
//     scratch) and runs the packed kernels over the biased q8_32 columns.
//     A product with an interleaved copy of its weight (interleaved.h) reads that copy only:
//     decode by the interleaved tiles (16 rows a call, with the activations' block sums),
//     prompts by the packed kernels over groups repacked from it.
//  3. Types without kernels, and quantized types in the f32-activation mode, dequantize the
//     task's weight rows (the reference's floats, row_dequantize.h) into a per-thread
//     scratch and use F32's kernels: the result then differs from cpu_ref's only in the
//     order of the f32 sums.
// Neither the blocking nor the thread count changes any output: the tile kernels sum each
// output in an order that depends on k and the path only (type_kernels.h).
#include "backend/cpu/matmul.h"

#include <algorithm>
#include <functional>
#include <numeric>
#include <vector>

#include "backend/cpu/kernel_groups.h"
#include "backend/cpu/packed_gemm.h"
#include "backend/cpu/row_dequantize.h"
#include "backend/cpu/type_kernels.h"
#include "backend/cpu_ref/checks.h"
#include "backend/op_checks.h"
#include "core/error.h"

namespace strata::cpu {
namespace {

void check_computable(std::string_view op, std::string_view role, const Tensor& t) {
  if (t.traits().dequantize == nullptr) {
    fail("{}: {} {}: type {} has no reference dequantize, so the cpu backend cannot compute with it", op, role,
         t.describe(), t.traits().name);
  }
}

// The kernels one call runs: packed kernels (or nullptr) for prompts, else tile kernels
// (after the weight rows go through f32 where `dequantize` is not nullptr).
struct Plan {
  const TypeKernels* kernels;
  const PackedKernels* packed;
  DequantizeRowFn dequantize;
  const InterleavedWeight* interleaved = nullptr;  // read instead of the weight's rows
  int max_rows() const { return packed != nullptr || interleaved != nullptr ? kPackRows : kernels->max_rows; }
};

Plan plan_for(DType type, int64_t m, const MatmulConfig& config) {
  const TypeKernels* own = type_kernels(type, config.isa);
  if (own == nullptr || (own->act != ActFormat::f32 && config.f32_activations)) {
    return {float_kernels(DType::F32, config.isa), nullptr, dequantize_row_fn(type, config.isa)};
  }
  const PackedKernels* packed =
      own->act == ActFormat::q8_32 && m >= kPackMinColumns ? packed_kernels(type, config.isa) : nullptr;
  return {own, packed, nullptr};
}

// The plan of one product: its type's, reading the interleaved copy where there is one and
// the plan's kernels are those it serves (8-bit activations; for prompts, packed ones or the
// copy's own prompt tiles).
Plan plan_for(const MatmulProduct& p, int64_t m, const MatmulConfig& config) {
  Plan plan = plan_for(p.w->dtype(), m, config);
  const InterleavedKernels* ik = p.interleaved != nullptr ? p.interleaved->kernels : nullptr;
  if (ik != nullptr && plan.dequantize == nullptr && plan.kernels->act != ActFormat::f32 &&
      (m < kPackMinColumns || plan.packed != nullptr || ik->prompt_tile != nullptr)) {
    plan.interleaved = p.interleaved;
  }
  return plan;
}

// Evenly spaced columns: column c at base + c * stride bytes.
struct Columns {
  const uint8_t* base = nullptr;
  size_t stride = 0;
};

// Whether the m pointers are evenly spaced with a stride of at least `min_stride` bytes
// (a single column always is); sets `cols`.
template <typename T>
bool evenly_spaced(const std::vector<T*>& ptrs, size_t min_stride, Columns& cols) {
  cols.base = reinterpret_cast<const uint8_t*>(ptrs[0]);
  if (ptrs.size() == 1) {
    cols.stride = min_stride;
    return true;
  }
  const auto first = reinterpret_cast<uintptr_t>(ptrs[0]), second = reinterpret_cast<uintptr_t>(ptrs[1]);
  if (second < first + min_stride) return false;
  cols.stride = second - first;
  for (size_t c = 2; c < ptrs.size(); ++c) {
    if (reinterpret_cast<uintptr_t>(ptrs[c]) != first + c * cols.stride) return false;
  }
  return true;
}

// x's columns in `format`: in place where possible, else converted into `storage`.
Columns prepare_activations(const std::vector<const float*>& x_cols, int64_t k, ActFormat format, Isa isa,
                            ThreadPool& pool, std::vector<uint8_t>& storage) {
  Columns cols;
  if (format == ActFormat::f32 && evenly_spaced(x_cols, size_t(k) * sizeof(float), cols)) return cols;
  const size_t bytes = act_bytes(format, k);
  storage.resize(bytes * x_cols.size());
  constexpr int64_t kColumnsPerTask = 8;
  const auto m = int64_t(x_cols.size());
  pool.run((m + kColumnsPerTask - 1) / kColumnsPerTask, [&](int64_t task, int) {
    for (int64_t c = task * kColumnsPerTask; c < std::min(m, (task + 1) * kColumnsPerTask); ++c) {
      quantize_act(format, isa, x_cols[size_t(c)], k, storage.data() + size_t(c) * bytes);
    }
  });
  return {storage.data(), bytes};
}

constexpr int64_t kColumnBlock = 64;      // columns of one task
constexpr int64_t kMaxRowBlock = 64;      // rows of one task, at most
constexpr int64_t kDequantRowBlock = 16;  // rows of one task that dequantizes (its scratch: rows x k floats)
constexpr int64_t kTasksPerThread = 8;    // enough tasks to balance the threads' loads

int64_t round_up(int64_t v, int64_t to) {
  return (v + to - 1) / to * to;
}

// Rows per task: a multiple of the kernel's max_rows, small enough to give every thread
// several tasks, at most kMaxRowBlock (kDequantRowBlock when dequantizing).
int64_t row_block(int64_t n, int64_t col_blocks, int n_threads, const Plan& plan) {
  const int64_t want_tasks = kTasksPerThread * n_threads;
  const int64_t rows = (n * col_blocks + want_tasks - 1) / want_tasks;
  const int64_t cap = plan.dequantize != nullptr ? kDequantRowBlock : kMaxRowBlock;
  return round_up(std::clamp<int64_t>(rows, 1, cap), plan.max_rows());
}

// The first row of each task of a group of n rows and n at the end, every first row a
// multiple of `align`. Decode (one column block straight from the weights) takes guided
// blocks: a quarter of the rows left per thread (`rows_after`: rows of the groups that follow
// in the same run), down to kMaxRowBlock. The tile kernels prefetch ahead within the rows a
// thread streams, so few long blocks keep each thread's stream going; the smaller last ones
// balance the threads. Otherwise blocks of row_block's rows.
std::vector<int64_t> row_starts(int64_t n, int64_t col_blocks, int n_threads, const Plan& plan, int64_t align,
                                int64_t rows_after) {
  std::vector<int64_t> starts = {0};
  const bool guided = col_blocks == 1 && plan.packed == nullptr && plan.dequantize == nullptr;
  const int64_t rows = round_up(row_block(n, col_blocks, n_threads, plan), align);
  for (int64_t r = 0; r < n;) {
    const int64_t left = n - r + rows_after;
    const int64_t block =
        guided ? round_up(round_up(std::max(left / (4 * n_threads), kMaxRowBlock), plan.max_rows()), align) : rows;
    r += std::min(n - r, block);
    starts.push_back(r);
  }
  return starts;
}

// One task's outputs: rows [r0, r1) x columns [c0, c1), written through out_cols.
struct TaskRange {
  int64_t r0, r1, c0, c1;
};

// out[r] = sum over the terms of one column's tile outputs (tile: [terms][stride] of rows),
// added in term order.
void combine_terms(const float* tile, size_t stride, int terms, int nr, float* out) {
  for (int r = 0; r < nr; ++r) {
    float v = tile[r];
    for (int i = 1; i < terms; ++i) v += tile[size_t(i) * stride + size_t(r)];
    out[r] = v;
  }
}

// act: `terms` columns for each column of x (two-term activations: q, then q_residual), so
// that one kernel call takes both terms of max_cols / terms columns over the same weights.
void run_tiles(const Plan& plan, int64_t k, const uint8_t* w_rows, size_t w_stride, const Columns& act, int terms,
               const std::vector<float*>& out_cols, const TaskRange& t) {
  const TypeKernels& kern = *plan.kernels;
  const int per_call = std::max(1, kern.max_cols / terms);  // columns of x per group of calls
  const auto stride = size_t(kern.max_rows);
  std::vector<float> tile(stride * size_t(std::max(kern.max_cols, per_call * terms)));  // [nr] per act column
  for (int64_t r = t.r0; r < t.r1; r += kern.max_rows) {
    const int nr = int(std::min<int64_t>(kern.max_rows, t.r1 - r));
    const uint8_t* w_tile = w_rows + size_t(r - t.r0) * w_stride;
    for (int64_t c = t.c0; c < t.c1; c += per_call) {
      const int nc = int(std::min<int64_t>(per_call, t.c1 - c)), n_act = nc * terms;
      for (int v = 0; v < n_act; v += kern.max_cols) {
        kern.dot_tile(k, w_tile, w_stride, nr, act.base + size_t(c * terms + v) * act.stride, act.stride,
                      std::min(kern.max_cols, n_act - v), tile.data() + size_t(v) * stride, stride);
      }
      for (int j = 0; j < nc; ++j) {
        combine_terms(tile.data() + size_t(j * terms) * stride, stride, terms, nr, out_cols[size_t(c + j)] + r);
      }
    }
  }
}

// Writes the packed blocks of rows [r, r + nr) (nr <= 16) of a task's weight.
using RepackGroup = std::function<void(int64_t r, int nr, RowPackedBlock* out)>;

// The packed path of run_tiles: rows [r0, r1) repacked into `repacked` 16 at a time, then
// every column of [c0, c1) by the packed kernels.
void run_packed(const PackedKernels& kern, int64_t k, const RepackGroup& repack, const Columns& act, int terms,
                const std::vector<float*>& out_cols, const TaskRange& t, std::vector<RowPackedBlock>& repacked) {
  const int64_t blocks = k / 32, groups = (t.r1 - t.r0 + kPackRows - 1) / kPackRows;
  repacked.resize(size_t(groups * blocks));
  for (int64_t g = 0; g < groups; ++g) {
    const int nr = int(std::min<int64_t>(kPackRows, t.r1 - t.r0 - g * kPackRows));
    repack(t.r0 + g * kPackRows, nr, repacked.data() + size_t(g * blocks));
  }
  const int per_call = std::max(1, kern.max_cols / terms);
  constexpr auto stride = size_t(kPackRows);
  std::vector<float> tile(stride * size_t(std::max(kern.max_cols, per_call * terms)));  // [16] per act column
  for (int64_t c = t.c0; c < t.c1; c += per_call) {
    const int nc = int(std::min<int64_t>(per_call, t.c1 - c)), n_act = nc * terms;
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t r = t.r0 + g * kPackRows;
      const int nr = int(std::min<int64_t>(kPackRows, t.r1 - r));
      for (int v = 0; v < n_act; v += kern.max_cols) {
        kern.tile(k, repacked.data() + size_t(g * blocks), nr, act.base + size_t(c * terms + v) * act.stride,
                  act.stride, std::min(kern.max_cols, n_act - v), tile.data() + size_t(v) * stride, kPackRows);
      }
      for (int j = 0; j < nc; ++j) {
        combine_terms(tile.data() + size_t(j * terms) * stride, stride, terms, nr, out_cols[size_t(c + j)] + r);
      }
    }
  }
}

// The block sums of evenly spaced q8_32 columns: column c's at base + c * stride.
struct SumColumns {
  const int32_t* base = nullptr;
  size_t stride = 0;
};

// The interleaved path of run_tiles: rows [r0, r1) (r0 a multiple of 16) group by group,
// each group by every column of [c0, c1): by the copy's prompt tiles where it has them and
// the task has prompt columns, else by its decode tiles.
void run_interleaved(const InterleavedWeight& iw, int64_t k, const Columns& act, const SumColumns& sums, int terms,
                     const std::vector<float*>& out_cols, const TaskRange& t) {
  if (t.r0 % kInterleaveRows != 0) fail("cpu matmul: a task of interleaved weights starts at row {}", t.r0);
  const InterleavedKernels& kern = *iw.kernels;
  const bool prompt = kern.prompt_tile != nullptr && t.c1 - t.c0 >= kPackMinColumns;
  const int max_cols = prompt ? kern.prompt_max_cols : kern.max_cols;
  const int per_call = std::max(1, max_cols / terms);
  constexpr auto stride = size_t(kInterleaveRows);
  std::vector<float> tile(stride * size_t(std::max(max_cols, per_call * terms)));  // [16] per act column
  for (int64_t r = t.r0; r < t.r1; r += kInterleaveRows) {
    const int nr = int(std::min<int64_t>(kInterleaveRows, t.r1 - r));
    const uint8_t* group = iw.group(r / kInterleaveRows);
    for (int64_t c = t.c0; c < t.c1; c += per_call) {
      const int nc = int(std::min<int64_t>(per_call, t.c1 - c)), n_act = nc * terms;
      for (int v = 0; v < n_act; v += max_cols) {
        const int64_t col = c * terms + v;
        const int n = std::min(max_cols, n_act - v);
        float* out = tile.data() + size_t(v) * stride;
        if (prompt) {
          kern.prompt_tile(k, group, act.base + size_t(col) * act.stride, act.stride, n, out, stride);
        } else {
          const int32_t* col_sums = sums.base != nullptr ? sums.base + size_t(col) * sums.stride : nullptr;
          kern.tile(k, group, act.base + size_t(col) * act.stride, act.stride, col_sums, sums.stride, n, out, stride);
        }
      }
      for (int j = 0; j < nc; ++j) {
        combine_terms(tile.data() + size_t(j * terms) * stride, stride, terms, nr, out_cols[size_t(c + j)] + r);
      }
    }
  }
}

// Buffers of the calls made from one thread, kept from call to call: buffers of a few hundred
// KB allocated per call would come from mmap and fault their pages in every time.
struct Workspace {
  // x in the kernels' activation forms: [ActFormat][biased for the packed kernels][residual]
  std::vector<uint8_t> act[3][2][2];
  std::vector<int32_t> sums[2];                            // [terms - 1]: block sums of the q8_32 columns
  std::vector<float> residual;                             // [k] a column's rounding residual in f32
  std::vector<std::vector<float>> rows_f32;                // per pool thread: dequantized weight rows
  std::vector<std::vector<RowPackedBlock>> rows_repacked;  // per pool thread: repacked weight rows
};

Workspace& workspace() {
  thread_local Workspace ws;
  return ws;
}

// One product as its tasks run it.
struct Prepared {
  const Tensor* w;
  Plan plan;
  Columns act;                   // `terms` columns per column of x
  SumColumns sums;               // their block sums, for the interleaved tiles
  int terms;                     // 2 for two-term activations (q, q_residual), else 1
  std::vector<float*> out_cols;  // m columns of [n]
};

// A task: rows [r0, r1) x columns [c0, c1) of every product of a group.
struct Task {
  size_t group;
  TaskRange range;
};

void run_product(const Prepared& p, int64_t k, const TaskRange& t, int thread, Workspace& ws) {
  const uint8_t* w_rows = p.w->row(t.r0);
  size_t w_stride = p.w->nb(1);
  if (p.plan.dequantize != nullptr) {
    std::vector<float>& rows_f32 = ws.rows_f32[size_t(thread)];
    rows_f32.resize(size_t((t.r1 - t.r0) * k));
    for (int64_t r = t.r0; r < t.r1; ++r) p.plan.dequantize(p.w->row(r), rows_f32.data() + size_t((r - t.r0) * k), k);
    w_rows = reinterpret_cast<const uint8_t*>(rows_f32.data());
    w_stride = size_t(k) * sizeof(float);
  }
  const InterleavedWeight* iw = p.plan.interleaved;
  if (iw != nullptr && p.plan.packed == nullptr) {
    run_interleaved(*iw, k, p.act, p.sums, p.terms, p.out_cols, t);
  } else if (p.plan.packed != nullptr) {
    const RepackFn repack = p.plan.packed->repack;
    const RepackGroup group = [&](int64_t r, int nr, RowPackedBlock* out) {
      if (iw != nullptr) {
        iw->kernels->to_packed(k, iw->group(r / kPackRows), out);
      } else {
        repack(k, w_rows + size_t(r - t.r0) * w_stride, w_stride, nr, out);
      }
    };
    run_packed(*p.plan.packed, k, group, p.act, p.terms, p.out_cols, t, ws.rows_repacked[size_t(thread)]);
  } else {
    run_tiles(p.plan, k, w_rows, w_stride, p.act, p.terms, p.out_cols, t);
  }
}

}  // namespace

void matmul(const Tensor& w, const Tensor& x, Tensor& out, const MatmulConfig& config, ThreadPool& pool,
            const InterleavedWeight* interleaved) {
  check_matmul_args(w, x, out, check_computable);
  const MatmulGroup group{{{&w, &out, interleaved}}};
  matmul_groups(std::span(&group, 1), x, config, pool);
}

void matmul_groups(std::span<const MatmulGroup> groups, const Tensor& x, const MatmulConfig& config, ThreadPool& pool,
                   const MatmulEpilogue& epilogue) {
  const int64_t k = x.ne(0), m = x.n_rows();
  if (m == 0) return;
  const std::vector<const float*> x_cols = cpu_ref::f32_rows(x);  // m columns of [k]
  Workspace& ws = workspace();
  bool have_act[3][2][2] = {};
  Columns act[3][2][2];
  // x in the form `plan` reads, in `terms` columns per column: [format][biased][terms - 1].
  // Two terms: q (quantize_act of x) and q_residual (quantize_act of act_residual).
  std::function<Columns(const Plan&, int)> activations = [&](const Plan& plan, int terms) {
    const ActFormat format = plan.kernels->act;
    const auto f = size_t(format);
    const size_t biased = plan.packed != nullptr ? 1 : 0, two = size_t(terms - 1);
    if (have_act[f][biased][two]) return act[f][biased][two];
    std::vector<uint8_t>& storage = ws.act[f][biased][two];
    if (terms == 1) {
      act[f][biased][0] = prepare_activations(x_cols, k, format, config.isa, pool, storage);
    } else {
      const Columns q = activations(Plan{plan.kernels, nullptr, nullptr}, 1);  // unbiased
      const size_t bytes = act_bytes(format, k);
      storage.resize(2 * bytes * size_t(m));
      ws.residual.resize(size_t(k));
      for (int64_t c = 0; c < m; ++c) {
        const uint8_t* qc = q.base + size_t(c) * q.stride;
        std::copy_n(qc, bytes, storage.data() + size_t(2 * c) * bytes);
        act_residual(format, x_cols[size_t(c)], qc, k, ws.residual.data());
        quantize_act(format, config.isa, ws.residual.data(), k, storage.data() + size_t(2 * c + 1) * bytes);
      }
      act[f][biased][1] = {storage.data(), bytes};
    }
    const Columns cols = act[f][biased][two];
    if (biased != 0) {
      pool.run(m * terms, [&](int64_t c, int) { bias_q8_32(k, storage.data() + size_t(c) * cols.stride); });
    }
    have_act[f][biased][two] = true;
    return cols;
  };

  // The block sums of the unbiased q8_32 columns in `terms` columns per column.
  bool have_sums[2] = {};
  const auto block_sums = [&](const Columns& cols, int terms) {
    std::vector<int32_t>& sums = ws.sums[terms - 1];
    const int64_t blocks = k / 32;
    if (!have_sums[terms - 1]) {
      sums.resize(size_t(blocks * m * terms));
      for (int64_t c = 0; c < m * terms; ++c)
        act_block_sums(cols.base + size_t(c) * cols.stride, k, &sums[size_t(c * blocks)]);
      have_sums[terms - 1] = true;
    }
    return SumColumns{sums.data(), size_t(blocks)};
  };

  std::vector<std::vector<Prepared>> prepared(groups.size());
  std::vector<int64_t> col_block(groups.size());
  int64_t rows_left = 0;  // rows of all groups (for the guided blocks)
  for (size_t g = 0; g < groups.size(); ++g) {
    bool packed = false;
    for (const MatmulProduct& p : groups[g].products) {
      const Plan plan = plan_for(p, m, config);
      const int terms = config.two_term && plan.dequantize == nullptr && plan.kernels->act != ActFormat::f32 ? 2 : 1;
      const Columns cols = activations(plan, terms);
      const bool sums = plan.interleaved != nullptr && plan.packed == nullptr && plan.kernels->act == ActFormat::q8_32;
      prepared[g].push_back(
          {p.w, plan, cols, sums ? block_sums(cols, terms) : SumColumns{}, terms, cpu_ref::mutable_f32_rows(*p.out)});
      packed = packed || plan.packed != nullptr;
    }
    col_block[g] = packed ? m : std::min(m, kColumnBlock);
    if (!groups[g].products.empty()) rows_left += groups[g].products[0].w->ne(1);
  }

  std::vector<Task> tasks;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups[g].products.empty()) continue;
    const int64_t n = groups[g].products[0].w->ne(1);
    rows_left -= n;
    // The blocks of the group's first product's plan (the products of a group are alike).
    const int64_t col_blocks = (m + col_block[g] - 1) / col_block[g];
    // Interleaved weights are read a group of 16 rows at a time: blocks start at a group.
    int64_t align = groups[g].row_align;
    for (const Prepared& p : prepared[g]) {
      if (p.plan.interleaved != nullptr) align = std::lcm(align, int64_t(kInterleaveRows));
    }
    const std::vector<int64_t> starts =
        row_starts(n, col_blocks, pool.n_threads(), prepared[g][0].plan, align, rows_left);
    for (size_t b = 0; b + 1 < starts.size(); ++b) {
      for (int64_t c0 = 0; c0 < m; c0 += col_block[g]) {
        tasks.push_back({g, {starts[b], starts[b + 1], c0, std::min(m, c0 + col_block[g])}});
      }
    }
  }
  if (ws.rows_f32.size() < size_t(pool.n_threads())) ws.rows_f32.resize(size_t(pool.n_threads()));
  if (ws.rows_repacked.size() < size_t(pool.n_threads())) ws.rows_repacked.resize(size_t(pool.n_threads()));
  pool.run(int64_t(tasks.size()), [&](int64_t i, int thread) {
    const Task& t = tasks[size_t(i)];
    for (const Prepared& p : prepared[t.group]) run_product(p, k, t.range, thread, ws);
    if (epilogue) epilogue({t.group, t.range.r0, t.range.r1, t.range.c0, t.range.c1});
  });
}

}  // namespace strata::cpu
