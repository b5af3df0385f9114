// get_rows: the embedding lookup, for a table of any dequantizable type; and the fast
// backend's type check.
#include <cstring>

#include "backend/cpu/ops.h"
#include "backend/op_checks.h"
#include "core/error.h"

namespace strata::cpu {

void check_dequantizable(std::string_view op, std::string_view role, const Tensor& t) {
  if (t.traits().dequantize == nullptr) {
    fail("{}: {} {}: type {} has no reference dequantize, so the cpu backend cannot compute with it", op, role,
         t.describe(), t.traits().name);
  }
}

// out[:, i] = table[:, ids[i]]       table [n_embd, n_vocab]; out [n_embd, n_ids] f32
void get_rows(const OpContext& ctx, const Tensor& table, std::span<const int32_t> ids, Tensor& out) {
  check_get_rows_args(table, ids, out, check_dequantizable);
  const int64_t n_embd = table.ne(0);
  const Rows out_rows(out);
  const bool packed = table.nb(0) == table.traits().type_size;
  parallel_chunks(*ctx.pool, int64_t(ids.size()), min_rows(n_embd), [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {
      float* dst = out_rows.mutable_f32(i);
      if (packed && table.dtype() == DType::F32) {
        std::memcpy(dst, table.row(ids[size_t(i)]), size_t(n_embd) * sizeof(float));
      } else {
        table.dequantize_row(dst, ids[size_t(i)]);
      }
    }
  });
}

}  // namespace strata::cpu
