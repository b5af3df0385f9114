// get_rows: the embedding lookup, for a table of any dequantizable type.
#include <string>

#include "backend/cpu_ref/checks.h"
#include "backend/cpu_ref/ops.h"
#include "core/error.h"

namespace strata::cpu_ref {

// out[:, i] = table[:, ids[i]]       table [n_embd, n_vocab]; out [n_embd, n_ids] f32
void get_rows(const Tensor& table, std::span<const int32_t> ids, Tensor& out) {
  constexpr std::string_view op = "get_rows";
  check_dequantizable(op, "table", table);
  check_max_dims(op, "table", table, 2);
  check_f32_output(op, "out", out);
  const int64_t n_embd = table.ne(0);
  const int64_t n_vocab = table.ne(1);
  const int64_t n_ids = int64_t(ids.size());
  check_shape(op, "out", out, {n_embd, n_ids, 1, 1});
  check_no_alias(op, "out", out, "table", table);
  for (int64_t i = 0; i < n_ids; ++i) {
    const int32_t id = ids[size_t(i)];
    if (id < 0 || id >= n_vocab) {
      fail("{}: id {} (ids[{}]) is out of range for {} (valid ids are 0..{})", op, id, i, table.describe(),
           n_vocab - 1);
    }
  }
  for (int64_t i = 0; i < n_ids; ++i) {
    table.dequantize_row(reinterpret_cast<float*>(out.mutable_row(i)), ids[size_t(i)]);
  }
}

}  // namespace strata::cpu_ref
