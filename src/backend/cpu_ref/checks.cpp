#include "backend/cpu_ref/checks.h"

#include "core/error.h"

namespace strata::cpu_ref {

void check_dequantizable(std::string_view op, std::string_view role, const Tensor& t) {
  if (t.traits().dequantize == nullptr) {
    fail("{}: {} {}: type {} has no reference dequantize, so the cpu_ref backend cannot compute with it", op, role,
         t.describe(), t.traits().name);
  }
}

void flat_row_index(const Tensor& t, int64_t r, int64_t& i1, int64_t& i2, int64_t& i3) {
  i1 = r % t.ne(1);
  i2 = (r / t.ne(1)) % t.ne(2);
  i3 = r / (t.ne(1) * t.ne(2));
}

void dequantize_flat_row(const Tensor& t, int64_t r, float* dst) {
  int64_t i1, i2, i3;
  flat_row_index(t, r, i1, i2, i3);
  t.dequantize_row(dst, i1, i2, i3);
}

std::vector<const float*> f32_rows(const Tensor& t) {
  std::vector<const float*> rows(size_t(t.n_rows()));
  for (int64_t r = 0; r < t.n_rows(); ++r) {
    int64_t i1, i2, i3;
    flat_row_index(t, r, i1, i2, i3);
    rows[size_t(r)] = reinterpret_cast<const float*>(t.row(i1, i2, i3));
  }
  return rows;
}

std::vector<float*> mutable_f32_rows(const Tensor& t) {
  std::vector<float*> rows(size_t(t.n_rows()));
  for (int64_t r = 0; r < t.n_rows(); ++r) {
    int64_t i1, i2, i3;
    flat_row_index(t, r, i1, i2, i3);
    rows[size_t(r)] = reinterpret_cast<float*>(t.mutable_row(i1, i2, i3));
  }
  return rows;
}

}  // namespace strata::cpu_ref
