#include "backend/cpu_ref/checks.h"

#include "core/error.h"

namespace strata::cpu_ref {
namespace {

std::string dims_string(const Tensor::Dims& ne) {
  int n = kMaxDims;
  while (n > 1 && ne[size_t(n - 1)] == 1) --n;
  std::string s = "[";
  for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(ne[size_t(i)]);
  return s + "]";
}

// First and one-past-last byte that `t` can touch; empty when it has no elements.
std::pair<const uint8_t*, const uint8_t*> byte_extent(const Tensor& t) {
  if (t.n_elements() == 0) return {nullptr, nullptr};
  size_t last = t.nb(0);  // the last block (or element) of dim 0
  last += size_t(t.ne(0) / t.traits().block_size - 1) * t.nb(0);
  for (int d = 1; d < kMaxDims; ++d) last += size_t(t.ne(d) - 1) * t.nb(d);
  return {t.data(), t.data() + last};
}

}  // namespace

void check_f32(std::string_view op, std::string_view role, const Tensor& t) {
  if (t.dtype() != DType::F32) fail("{}: {} {} must be f32", op, role, t.describe());
  if (t.nb(0) != sizeof(float)) {
    fail("{}: {} {} has element stride {} bytes; its rows must be packed (stride 4)", op, role, t.describe(), t.nb(0));
  }
}

void check_f32_output(std::string_view op, std::string_view role, const Tensor& t) {
  check_f32(op, role, t);
  if (!t.is_writable()) fail("{}: {} {} is read-only", op, role, t.describe());
}

void check_dequantizable(std::string_view op, std::string_view role, const Tensor& t) {
  if (t.traits().dequantize == nullptr) {
    fail("{}: {} {}: type {} has no reference dequantize, so the cpu_ref backend cannot compute with it", op, role,
         t.describe(), t.traits().name);
  }
}

void check_shape(std::string_view op, std::string_view role, const Tensor& t, const Tensor::Dims& ne) {
  if (t.ne() != ne) fail("{}: {} {} should have shape {}", op, role, t.describe(), dims_string(ne));
}

void check_same_shape(std::string_view op, std::string_view role, const Tensor& t, std::string_view ref_role,
                      const Tensor& ref) {
  if (t.ne() != ref.ne()) {
    fail("{}: {} {} should have the shape of {} {}", op, role, t.describe(), ref_role, ref.describe());
  }
}

void check_max_dims(std::string_view op, std::string_view role, const Tensor& t, int n) {
  if (t.n_dims() > n) fail("{}: {} {} should have at most {} dims", op, role, t.describe(), n);
}

void check_no_alias(std::string_view op, std::string_view out_role, const Tensor& out, std::string_view in_role,
                    const Tensor& in) {
  const auto [out_begin, out_end] = byte_extent(out);
  const auto [in_begin, in_end] = byte_extent(in);
  if (out_begin != nullptr && in_begin != nullptr && out_begin < in_end && in_begin < out_end) {
    fail("{}: {} {} overlaps {} {} in memory; this op needs a separate output", op, out_role, out.describe(), in_role,
         in.describe());
  }
}

void check_same_or_no_alias(std::string_view op, std::string_view out_role, const Tensor& out, std::string_view in_role,
                            const Tensor& in) {
  if (out.data() == in.data() && out.nb() == in.nb() && out.ne() == in.ne()) return;
  check_no_alias(op, out_role, out, in_role, in);
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
