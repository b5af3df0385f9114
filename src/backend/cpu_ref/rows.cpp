// get_rows: the embedding lookup, for a table of any dequantizable type.
#include <string>

#include "backend/cpu_ref/checks.h"
#include "backend/cpu_ref/ops.h"
#include "core/error.h"

namespace strata::cpu_ref {

// out[:, i] = table[:, ids[i]]       table [n_embd, n_vocab]; out [n_embd, n_ids] f32
void get_rows(const Tensor& table, std::span<const int32_t> ids, Tensor& out) {
  check_get_rows_args(table, ids, out, check_dequantizable);
  const int64_t n_ids = int64_t(ids.size());
  for (int64_t i = 0; i < n_ids; ++i) {
    table.dequantize_row(reinterpret_cast<float*>(out.mutable_row(i)), ids[size_t(i)]);
  }
}

}  // namespace strata::cpu_ref
