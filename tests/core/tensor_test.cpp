#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/quant_blocks.h"

namespace strata {
namespace {

// Element (i0, i1, i2, i3) of an f32 tensor, read through its strides.
float f32_at(const Tensor& t, int64_t i0, int64_t i1, int64_t i2 = 0, int64_t i3 = 0) {
  float v;
  std::memcpy(&v, t.row(i1, i2, i3) + size_t(i0) * t.nb(0), sizeof v);
  return v;
}

// An f32 tensor whose element (i0, i1, i2) holds 100*i2 + 10*i1 + i0.
Tensor iota3(int64_t ne0, int64_t ne1, int64_t ne2 = 1) {
  Tensor t = Tensor::empty(DType::F32, {ne0, ne1, ne2});
  for (int64_t i2 = 0; i2 < ne2; ++i2) {
    for (int64_t i1 = 0; i1 < ne1; ++i1) {
      auto* r = reinterpret_cast<float*>(t.mutable_row(i1, i2));
      for (int64_t i0 = 0; i0 < ne0; ++i0) r[i0] = float(100 * i2 + 10 * i1 + i0);
    }
  }
  return t;
}

// Runs `f`, expects a strata::Error, and checks that its message contains each of `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no strata::Error was thrown";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(Tensor, F32ConstructionAndStrides) {
  Tensor t = Tensor::empty(DType::F32, {8, 3, 2}, "x");  // [8, 3, 2]
  EXPECT_EQ(t.ne(), (Tensor::Dims{8, 3, 2, 1}));
  EXPECT_EQ(t.nb(), (Tensor::Strides{4, 32, 96, 192}));
  EXPECT_EQ(t.n_dims(), 3);
  EXPECT_EQ(t.n_elements(), 48);
  EXPECT_EQ(t.n_rows(), 6);
  EXPECT_EQ(t.row_bytes(), 32u);
  EXPECT_EQ(t.n_bytes(), 192u);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_TRUE(t.is_writable());
  EXPECT_EQ(t.shape_string(), "[8, 3, 2]");
  EXPECT_EQ(t.describe(), "tensor 'x' f32 [8, 3, 2]");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % kTensorAlignment, 0u);
  for (size_t i = 0; i < t.n_bytes(); ++i) ASSERT_EQ(t.data()[i], 0) << "not zero-filled at byte " << i;
  EXPECT_EQ(t.row(2, 1) - t.data(), 2 * 32 + 96);
}

// Small buffers and ones of 2 MiB or more (mapped on their own): zeros, aligned, writable to
// the last byte.
TEST(Storage, ZeroFilledAlignedAndWritableAtEverySize) {
  for (size_t n : {size_t(1), size_t(4096), (size_t(2) << 20) - 1, size_t(2) << 20, (size_t(5) << 20) + 12345}) {
    Storage s(n);
    ASSERT_EQ(s.size(), n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(s.data()) % kTensorAlignment, 0u) << n;
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i += 997) nonzero += s.data()[i] != 0;
    EXPECT_EQ(nonzero + size_t(s.data()[n - 1] != 0), 0u) << n;
    std::memset(s.data(), 0xab, n);
    EXPECT_EQ(s.data()[n - 1], 0xab);
  }
}

TEST(Tensor, F16AndQ4_0Strides) {
  Tensor h = Tensor::empty(DType::F16, {6, 5});  // [6, 5]
  EXPECT_EQ(h.nb(), (Tensor::Strides{2, 12, 60, 60}));
  EXPECT_EQ(h.n_bytes(), 60u);
  EXPECT_EQ(h.shape_string(), "[6, 5]");

  Tensor q = Tensor::empty(DType::Q4_0, {64, 3});  // [64, 3]: 2 blocks of 18 bytes per row
  EXPECT_EQ(sizeof(BlockQ4_0), 18u);
  EXPECT_EQ(q.nb(), (Tensor::Strides{18, 36, 108, 108}));
  EXPECT_EQ(q.n_elements(), 192);
  EXPECT_EQ(q.n_bytes(), 108u);
  EXPECT_EQ(q.row_bytes(), row_bytes(DType::Q4_0, 64));
  EXPECT_TRUE(q.is_contiguous());
}

TEST(Tensor, BadShapesThrowWithTheShape) {
  expect_error([] { Tensor::empty(DType::Q4_0, {30, 2}); }, {"[30, 2]", "q4_0", "32"});
  expect_error([] { Tensor::empty(DType::F32, {1, 2, 3, 4, 5}); }, {"[1, 2, 3, 4, 5]"});
  expect_error([] { Tensor::empty(DType::F32, std::vector<int64_t>{}); }, {"1 to 4 dims"});
  expect_error([] { Tensor::empty(DType::F32, {4, -1}); }, {"[4, -1]", "negative"});
  const int64_t big = std::numeric_limits<int64_t>::max() / 2;
  expect_error([&] { Tensor::empty(DType::F32, {big, 4}); }, {"overflow", std::to_string(big)});
  // Element count fits in int64 but the byte size does not fit in size_t.
  expect_error([] { Tensor::empty(DType::F64, {int64_t(1) << 31, int64_t(1) << 31}); }, {"overflow"});
}

TEST(Tensor, ZeroSizedTensorsAreValid) {
  Tensor t = Tensor::empty(DType::Q8_0, {32, 0});
  EXPECT_EQ(t.n_elements(), 0);
  EXPECT_EQ(t.n_bytes(), 0u);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.to_f32().n_elements(), 0);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor base = iota3(4, 6);           // [4, 6]
  Tensor rows = base.view_rows(2, 3);  // [4, 3], rows 2..4
  EXPECT_EQ(rows.shape_string(), "[4, 3]");
  EXPECT_EQ(rows.nb(), base.nb());
  EXPECT_TRUE(rows.is_contiguous());
  EXPECT_EQ(f32_at(rows, 1, 0), 21.0f);

  reinterpret_cast<float*>(rows.mutable_row(1))[3] = -7.0f;  // write through the view ...
  EXPECT_EQ(f32_at(base, 3, 3), -7.0f);                      // ... read through the base
  reinterpret_cast<float*>(base.mutable_row(4))[0] = 99.0f;  // and the other way round
  EXPECT_EQ(f32_at(rows, 0, 2), 99.0f);

  Tensor cols = base.slice(0, 1, 2);  // [2, 6], a strided view: rows keep their 16-byte stride
  EXPECT_EQ(cols.shape_string(), "[2, 6]");
  EXPECT_FALSE(cols.is_contiguous());
  EXPECT_EQ(f32_at(cols, 0, 5), 51.0f);
  EXPECT_EQ(f32_at(cols, 1, 3), 32.0f);
  reinterpret_cast<float*>(cols.mutable_row(0))[0] = 0.5f;  // cols (0, 0) is base (1, 0)
  EXPECT_EQ(f32_at(base, 1, 0), 0.5f);
}

TEST(Tensor, QuantizedSliceOnBlockBoundaries) {
  Tensor q = Tensor::empty(DType::Q8_0, {96, 2});  // 3 blocks per row
  Tensor mid = q.slice(0, 32, 64);
  EXPECT_EQ(mid.shape_string(), "[64, 2]");
  EXPECT_EQ(mid.data() - q.data(), 34);
  expect_error([&] { q.slice(0, 16, 32); }, {"block", "[96, 2]"});
  expect_error([&] { q.slice(0, 32, 48); }, {"block"});
}

TEST(Tensor, ViewOutOfRangeThrows) {
  Tensor t = Tensor::empty(DType::F32, {4, 6}, "w");
  expect_error([&] { t.view_rows(4, 3); }, {"[4, 7)", "'w'", "[4, 6]"});
  expect_error([&] { t.view_rows(-1, 2); }, {"[4, 6]"});
  expect_error([&] { t.slice(0, 0, 5); }, {"[4, 6]"});
  expect_error([&] { t.slice(4, 0, 1); }, {"dim 4"});
  expect_error([&] { t.view_rows(0, std::numeric_limits<int64_t>::max()); }, {"out of range"});
  expect_error([&] { t.row(6); }, {"row (6, 0, 0)", "[4, 6]"});
  expect_error([&] { t.row(0, 1); }, {"out of range"});
}

TEST(Tensor, Reshape) {
  Tensor base = iota3(4, 6);  // [4, 6]
  Tensor r = base.reshape({8, 3});
  EXPECT_EQ(r.shape_string(), "[8, 3]");
  EXPECT_EQ(r.nb(), (Tensor::Strides{4, 32, 96, 96}));
  EXPECT_EQ(r.data(), base.data());
  EXPECT_EQ(f32_at(r, 5, 1), f32_at(base, 1, 3));  // flat index 13
  EXPECT_EQ(base.reshape({2, 2, 3, 2}).n_dims(), 4);
  EXPECT_EQ(base.view_rows(1, 2).reshape({8}).shape_string(), "[8]");

  expect_error([&] { base.reshape({5, 5}); }, {"[4, 6]", "[5, 5]", "24", "25"});
  expect_error([&] { base.transpose().reshape({24}); }, {"not contiguous", "[6, 4]"});
  expect_error([&] { base.slice(0, 0, 2).reshape({12}); }, {"not contiguous"});
  expect_error([] { Tensor::empty(DType::Q4_0, {64, 2}).reshape({16, 8}); }, {"[16, 8]", "32"});
}

TEST(Tensor, TransposeSwapsShapeAndStrides) {
  Tensor base = iota3(3, 2);    // [3, 2]
  Tensor t = base.transpose();  // [2, 3]
  EXPECT_EQ(t.shape_string(), "[2, 3]");
  EXPECT_EQ(t.nb(0), base.nb(1));
  EXPECT_EQ(t.nb(1), base.nb(0));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_TRUE(t.transpose().is_contiguous());
  for (int64_t i1 = 0; i1 < 3; ++i1) {
    for (int64_t i0 = 0; i0 < 2; ++i0) EXPECT_EQ(f32_at(t, i0, i1), f32_at(base, i1, i0));
  }

  Tensor b3 = iota3(2, 3, 4);           // [2, 3, 4]
  Tensor p = b3.permute({2, 0, 1, 3});  // result dim i = source dim perm[i]: [4, 2, 3]
  EXPECT_EQ(p.shape_string(), "[4, 2, 3]");
  EXPECT_EQ(f32_at(p, 3, 1, 2), f32_at(b3, 1, 2, 3));
  expect_error([&] { b3.permute({0, 1, 1, 3}); }, {"not a permutation"});
  expect_error([&] { b3.transpose(0, 4); }, {"dims (0, 4)"});

  Tensor q = Tensor::empty(DType::Q4_0, {32, 2, 3});
  expect_error([&] { q.transpose(0, 1); }, {"quantized", "q4_0 [32, 2, 3]"});
  EXPECT_EQ(q.transpose(1, 2).shape_string(), "[32, 3, 2]");
}

TEST(Tensor, ExternalStorageIsKeptAliveUntilTheLastView) {
  bool freed = false;
  std::vector<float> values = {1, 2, 3, 4, 5, 6};
  std::shared_ptr<const void> mapping(values.data(), [&freed](const void*) { freed = true; });
  Tensor view;
  {
    Tensor t = Tensor::external(DType::F32, {3, 2}, values.data(), values.size() * 4, mapping, "ext");
    mapping.reset();  // the "file" drops its own handle
    EXPECT_FALSE(t.is_writable());
    EXPECT_EQ(t.keep_alive().get(), values.data());
    view = t.view_rows(1, 1).transpose();
    EXPECT_FALSE(freed);
  }
  EXPECT_FALSE(freed);  // `view` still holds the mapping
  EXPECT_EQ(f32_at(view, 0, 2), 6.0f);
  expect_error([&] { view.mutable_data(); }, {"read-only", "'ext'"});
  view = Tensor();
  EXPECT_TRUE(freed);
}

TEST(Tensor, OwnedStorageOutlivesTheOriginalHandle) {
  Tensor rows;
  std::weak_ptr<const void> watch;
  {
    Tensor t = iota3(4, 4);
    watch = t.keep_alive();
    rows = t.view_rows(3, 1);
  }
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(f32_at(rows, 2, 0), 32.0f);
  rows = Tensor();
  EXPECT_TRUE(watch.expired());
}

TEST(Tensor, ExternalBufferTooSmallThrows) {
  std::vector<uint8_t> bytes(100);
  expect_error(
      [&] {
        Tensor::external(DType::Q8_0, {64, 2}, bytes.data(), bytes.size(), nullptr, "w");
      },
      {"'w'", "[64, 2]", "136", "100"});
  expect_error([&] { Tensor::external(DType::F32, {4}, nullptr, 16, nullptr); }, {"null"});
}

TEST(Tensor, ToF32OfTransposedF32GivesTransposedValues) {
  Tensor base = iota3(3, 4, 2);              // [3, 4, 2]
  Tensor t = base.transpose(0, 1).to_f32();  // [4, 3, 2], packed
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.shape_string(), "[4, 3, 2]");
  const auto* out = reinterpret_cast<const float*>(t.data());
  for (int64_t i2 = 0; i2 < 2; ++i2) {
    for (int64_t i1 = 0; i1 < 3; ++i1) {
      for (int64_t i0 = 0; i0 < 4; ++i0) EXPECT_EQ(out[(i2 * 3 + i1) * 4 + i0], float(100 * i2 + 10 * i0 + i1));
    }
  }
  Tensor c = base.transpose(0, 1).contiguous();  // same bytes, same dtype
  EXPECT_EQ(c.dtype(), DType::F32);
  EXPECT_EQ(std::memcmp(c.data(), t.data(), t.n_bytes()), 0);
  EXPECT_EQ(base.contiguous().data(), base.data());  // already packed: no copy
}

TEST(Tensor, F16RoundTripAndTransposedRead) {
  std::vector<float> values;
  for (int i = 0; i < 24; ++i) values.push_back(0.1f + 2.0f * std::cos(float(i)));
  Tensor h = Tensor::from_f32(values, {6, 4}, DType::F16, "h");  // [6, 4]
  EXPECT_EQ(h.dtype(), DType::F16);
  EXPECT_EQ(h.name(), "h");
  const auto* bits = reinterpret_cast<const uint16_t*>(h.data());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(bits[i], f32_to_f16(values[i]));

  Tensor t = h.transpose().to_f32();  // [4, 6]
  for (int64_t i1 = 0; i1 < 6; ++i1) {
    for (int64_t i0 = 0; i0 < 4; ++i0) EXPECT_EQ(f32_at(t, i0, i1), f16_to_f32(bits[i0 * 6 + i1]));
  }
  expect_error([&] { Tensor::from_f32(values, {5, 4}, DType::F16); }, {"[5, 4]", "20", "24"});
}

// Fills a [64, 3] Q8_0 tensor with hand-made blocks: scale 2^-(block+row) and qs[j] = j - 16 + row.
Tensor handmade_q8_0() {
  Tensor q = Tensor::empty(DType::Q8_0, {64, 3});
  for (int64_t r = 0; r < 3; ++r) {
    auto* blocks = reinterpret_cast<BlockQ8_0*>(q.mutable_row(r));
    for (int b = 0; b < 2; ++b) {
      blocks[b].d = f32_to_f16(std::ldexp(1.0f, -(b + int(r))));
      for (int j = 0; j < QK8_0; ++j) blocks[b].qs[j] = int8_t(j - 16 + r);
    }
  }
  return q;
}

TEST(Tensor, ToF32OfQ8_0MatchesReferenceDequantize) {
  Tensor q = handmade_q8_0();
  Tensor f = q.to_f32();  // [64, 3]
  std::vector<float> ref(64);
  for (int64_t r = 0; r < 3; ++r) {
    type_traits(DType::Q8_0).dequantize(q.row(r), ref.data(), 64);
    for (int64_t i = 0; i < 64; ++i) {
      EXPECT_EQ(f32_at(f, i, r), ref[size_t(i)]);
      // The Q8_0 definition: x = d * q.
      const float d = std::ldexp(1.0f, -(int(i / 32) + int(r)));
      EXPECT_EQ(f32_at(f, i, r), d * float(i % 32 - 16 + r));
    }
  }
  Tensor tail = q.slice(0, 32, 32).view_rows(1, 2).to_f32();  // second block of rows 1, 2
  EXPECT_EQ(f32_at(tail, 5, 1), f32_at(f, 37, 2));
}

TEST(Tensor, FromF32QuantizesEachRowWithTheReference) {
  std::vector<float> values;
  for (int i = 0; i < 64 * 3; ++i) values.push_back(0.1f + 2.0f * std::cos(float(i)));
  Tensor q = Tensor::from_f32(values, {64, 3}, DType::Q8_0);
  std::vector<BlockQ8_0> ref(2);
  for (int64_t r = 0; r < 3; ++r) {
    type_traits(DType::Q8_0).quantize(values.data() + r * 64, ref.data(), 64);
    EXPECT_EQ(std::memcmp(q.row(r), ref.data(), 2 * sizeof(BlockQ8_0)), 0) << "row " << r;
  }
  expect_error([&] { Tensor::from_f32(values, {96, 2}, DType::Q4_K); }, {"[96, 2]", "256"});
}

TEST(Tensor, UncomputableTypeThrows) {
  Tensor t = Tensor::empty(DType::IQ2_XXS, {256, 2}, "w");
  expect_error([&] { t.to_f32(); }, {"'w'", "iq2_xxs"});
  expect_error([&] { iota3(32, 2).to_type(DType::IQ2_XXS); }, {"iq2_xxs", "cannot"});
}

}  // namespace
}  // namespace strata
