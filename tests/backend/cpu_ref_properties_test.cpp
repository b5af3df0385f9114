// Properties of the reference CPU backend that hold exactly or by construction, checked
// on hand-made inputs: rope's geometry and pairing, attention's masking and head mapping,
// thread-count independence, strided activations, in-place ops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "backend/cpu_ref/cpu_ref_backend.h"
#include "backend/op_harness.h"
#include "core/error.h"

namespace strata::test {
namespace {

Tensor f32_tensor(const std::vector<float>& v, ShapeRef ne) {
  return Tensor::from_f32(v, ne, DType::F32);
}

// rope on a copy of x [head_dim, n_heads, n_tokens]
std::vector<float> roped(const std::vector<float>& x, ShapeRef ne, std::vector<int32_t> positions, const RopeConfig& c,
                         Accumulation acc = Accumulation::f32) {
  CpuRefBackend b(acc);
  Tensor t = f32_tensor(x, ne);
  b.rope(t, positions, c);
  return host_values(t);
}

double norm(std::span<const float> x) {
  double s = 0;
  for (float v : x) s += double(v) * v;
  return std::sqrt(s);
}

// ---- rope ----------------------------------------------------------------------------

TEST(CpuRefRope, PositionZeroIsTheIdentity) {
  const std::vector<float> x = random_values(24, 1);
  for (bool neox : {false, true}) {
    RopeConfig c{6, 10000.0f, 0.5f, neox, {1.0f, 3.0f, 8.0f}};
    EXPECT_EQ(roped(x, {8, 3, 1}, {0}, c), x) << "neox " << neox;
  }
}

TEST(CpuRefRope, PreservesNormsAndKeepsDimsPastNRot) {
  const std::vector<float> x = random_values(2 * 10, 2);  // [10, 1, 2]
  for (bool neox : {false, true}) {
    RopeConfig c{6, 10000.0f, 1.0f, neox, {}};
    const std::vector<float> y = roped(x, {10, 1, 2}, {12345, 7}, c);
    for (int t = 0; t < 2; ++t) {
      std::span<const float> xt(&x[size_t(t * 10)], 6), yt(&y[size_t(t * 10)], 6);
      EXPECT_NEAR(norm(yt), norm(xt), 1e-6 * norm(xt));
      for (int i = 6; i < 10; ++i) EXPECT_EQ(y[size_t(t * 10 + i)], x[size_t(t * 10 + i)]);
    }
  }
}

// head_dim 4, base 10000, position 1: pair 0 turns by 1 rad, pair 1 by 10000^(-1/2) = 0.01 rad.
TEST(CpuRefRope, PairingOnAHandExample) {
  const std::vector<float> x = {1, 2, 3, 4};
  const double c1 = std::cos(1.0), s1 = std::sin(1.0), c2 = std::cos(0.01), s2 = std::sin(0.01);
  // normal: pairs (0, 1) and (2, 3)
  const std::vector<float> normal = roped(x, {4, 1, 1}, {1}, RopeConfig{4, 10000.0f, 1.0f, false, {}});
  const std::vector<double> want_normal = {1 * c1 - 2 * s1, 1 * s1 + 2 * c1, 3 * c2 - 4 * s2, 3 * s2 + 4 * c2};
  // NEOX: pairs (0, 2) and (1, 3)
  const std::vector<float> neox = roped(x, {4, 1, 1}, {1}, RopeConfig{4, 10000.0f, 1.0f, true, {}});
  const std::vector<double> want_neox = {1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 1 * s1 + 3 * c1, 2 * s2 + 4 * c2};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(normal[i], want_normal[i], 1e-6) << i;
    EXPECT_NEAR(neox[i], want_neox[i], 1e-6) << i;
  }
}

TEST(CpuRefRope, FreqFactorsDivideTheAngleAndFreqScaleMultipliesIt) {
  const std::vector<float> x = random_values(8, 3);  // [8, 1, 1]: 4 pairs
  for (bool neox : {false, true}) {
    const RopeConfig plain{8, 10000.0f, 1.0f, neox, {}};
    // factor 4 at position 8 turns as far as no factor at position 2 (angles in double: exact)
    const RopeConfig fours{8, 10000.0f, 1.0f, neox, {4.0f, 4.0f, 4.0f, 4.0f}};
    EXPECT_EQ(roped(x, {8, 1, 1}, {8}, fours), roped(x, {8, 1, 1}, {2}, plain));
    // freq_scale 0.25 at position 8 likewise
    const RopeConfig scaled{8, 10000.0f, 0.25f, neox, {}};
    EXPECT_EQ(roped(x, {8, 1, 1}, {8}, scaled), roped(x, {8, 1, 1}, {2}, plain));
    // per-pair factors: pair 2 with factor 4 at position 8 equals pair 2 at position 2
    const RopeConfig mixed{8, 10000.0f, 1.0f, neox, {1.0f, 1.0f, 4.0f, 1.0f}};
    const std::vector<float> m = roped(x, {8, 1, 1}, {8}, mixed);
    const std::vector<float> at8 = roped(x, {8, 1, 1}, {8}, plain), at2 = roped(x, {8, 1, 1}, {2}, plain);
    for (int i : neox ? std::vector<int>{2, 6} : std::vector<int>{4, 5}) EXPECT_EQ(m[size_t(i)], at2[size_t(i)]);
    for (int i : neox ? std::vector<int>{0, 1, 3, 4, 5, 7} : std::vector<int>{0, 1, 2, 3, 6, 7}) {
      EXPECT_EQ(m[size_t(i)], at8[size_t(i)]);
    }
  }
}

// The point of rope: q . k after rotation depends only on the distance of the positions.
TEST(CpuRefRope, DotProductDependsOnlyOnRelativePosition) {
  const std::vector<float> q = random_values(32, 4), k = random_values(32, 5);
  for (bool neox : {false, true}) {
    const RopeConfig c{32, 10000.0f, 1.0f, neox, {}};
    auto dot_at = [&](int32_t pq, int32_t pk) {
      const std::vector<float> a = roped(q, {32, 1, 1}, {pq}, c, Accumulation::f64);
      const std::vector<float> b = roped(k, {32, 1, 1}, {pk}, c, Accumulation::f64);
      double s = 0;
      for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
      return s;
    };
    EXPECT_NEAR(dot_at(5, 3), dot_at(1002, 1000), 1e-4);
    EXPECT_NEAR(dot_at(3, 5), dot_at(40, 42), 1e-4);
  }
}

// ---- attention -----------------------------------------------------------------------

struct Attn {
  int64_t head_dim, n_heads, n_kv_heads, n_ctx;
  DType cache_type = DType::F32;
};

// attention of q [head_dim, n_heads, n_tokens] over caches given as f32 values
std::vector<float> attend(const Attn& a, const std::vector<float>& q, int64_t n_tokens, const std::vector<float>& k,
                          const std::vector<float>& v, int64_t n_past) {
  CpuRefBackend b;
  Tensor kc = Tensor::from_f32(k, {a.head_dim, a.n_kv_heads, a.n_ctx}, a.cache_type);
  Tensor vc = Tensor::from_f32(v, {a.head_dim, a.n_kv_heads, a.n_ctx}, a.cache_type);
  Tensor out = b.alloc(DType::F32, {a.head_dim, a.n_heads, n_tokens}, "out");
  b.attention(f32_tensor(q, {a.head_dim, a.n_heads, n_tokens}), kc, vc, DenseKvLayout(n_past, n_tokens, a.n_ctx), 0.25f,
              0, out);
  return host_values(out);
}

TEST(CpuRefAttention, OneTokenAttendsOnlyToItself) {
  const Attn a{8, 4, 2, 5};
  const std::vector<float> q = random_values(8 * 4, 10), k = random_values(8 * 2 * 5, 11), v = random_values(80, 12);
  const std::vector<float> out = attend(a, q, 1, k, v, 0);
  for (int64_t h = 0; h < 4; ++h) {
    for (int64_t d = 0; d < 8; ++d) EXPECT_EQ(out[size_t(h * 8 + d)], v[size_t((h / 2) * 8 + d)]) << h << " " << d;
  }
}

TEST(CpuRefAttention, LaterKeysDoNotChangeEarlierOutputs) {
  const Attn a{16, 3, 3, 6};
  const std::vector<float> q = random_values(16 * 3 * 6, 20);
  std::vector<float> k = random_values(16 * 3 * 6, 21), v = random_values(16 * 3 * 6, 22);
  const std::vector<float> before = attend(a, q, 6, k, v, 0);
  for (size_t i = 16 * 3 * 5; i < k.size(); ++i) k[i] = v[i] = 50.0f;  // the last position's key and value
  const std::vector<float> after = attend(a, q, 6, k, v, 0);
  const size_t per_token = 16 * 3;
  EXPECT_TRUE(std::equal(before.begin(), before.begin() + 5 * per_token, after.begin()));
  EXPECT_FALSE(std::equal(before.begin() + 5 * per_token, before.end(), after.begin() + 5 * per_token));
}

// A batch of queries gives, bit for bit, what one query at a time gives at n_past = t.
TEST(CpuRefAttention, BatchEqualsOneTokenAtATime) {
  const Attn a{8, 6, 2, 9};
  const std::vector<float> q = random_values(8 * 6 * 4, 30), k = random_values(8 * 2 * 9, 31),
                           v = random_values(144, 32);
  const std::vector<float> batch = attend(a, q, 4, k, v, 2);
  for (int64_t t = 0; t < 4; ++t) {
    const std::vector<float> qt(q.begin() + t * 48, q.begin() + (t + 1) * 48);
    const std::vector<float> one = attend(a, qt, 1, k, v, 2 + t);
    EXPECT_TRUE(std::equal(one.begin(), one.end(), batch.begin() + t * 48)) << t;
  }
}

// Query head h reads KV head h / (n_heads / n_kv_heads): heads 0-1 -> 0, 2-3 -> 1, 4-5 -> 2.
TEST(CpuRefAttention, GroupedHeadsReadTheirKvHead) {
  const Attn a{4, 6, 3, 5};
  const std::vector<float> q = random_values(4 * 6 * 2, 40), k = random_values(4 * 3 * 5, 41);
  std::vector<float> v(4 * 3 * 5);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(1 + (i / 4) % 3);  // KV head j holds the value j + 1
  const std::vector<float> out = attend(a, q, 2, k, v, 3);
  for (int64_t t = 0; t < 2; ++t) {
    for (int64_t h = 0; h < 6; ++h) {
      for (int64_t d = 0; d < 4; ++d) EXPECT_NEAR(out[size_t((t * 6 + h) * 4 + d)], float(1 + h / 2), 1e-6);
    }
  }
}

// An f16 cache gives exactly what an f32 cache of the f16-rounded values gives, and
// store_kv into an f16 cache rounds like the type's conversion.
TEST(CpuRefAttention, F16CacheReadsRoundedValues) {
  Attn a{16, 4, 2, 7, DType::F16};
  const std::vector<float> q = random_values(16 * 4 * 3, 50);
  const std::vector<float> k = random_values(16 * 2 * 7, 51), v = random_values(16 * 2 * 7, 52);
  const std::vector<float> k16 = host_values(Tensor::from_f32(k, {16, 2, 7}, DType::F16));
  const std::vector<float> v16 = host_values(Tensor::from_f32(v, {16, 2, 7}, DType::F16));
  EXPECT_NE(k16, k);
  const std::vector<float> with_f16 = attend(a, q, 3, k, v, 4);
  a.cache_type = DType::F32;
  EXPECT_EQ(with_f16, attend(a, q, 3, k16, v16, 4));

  CpuRefBackend b;
  Tensor cache = b.alloc(DType::F16, {16, 2, 7}, "k_cache");
  b.store_kv(f32_tensor(k, {16, 2, 7}), cache, DenseKvLayout(0, 7, 7));
  EXPECT_EQ(host_values(cache), k16);
}

// A sequence whose blocks lie shuffled in a larger cache gives, bit for bit, what the same
// keys and values in a dense cache give; so does a second sequence in the same batch.
TEST(CpuRefAttention, PagedEqualsDense) {
  const Attn a{8, 4, 2, 12};
  const int64_t per_row = 8 * 2, block_tokens = 4;
  const std::vector<float> q = random_values(8 * 4 * 3, 60), k = random_values(size_t(per_row * 12), 61),
                           v = random_values(size_t(per_row * 12), 62);
  const std::vector<float> dense = attend(a, q, 3, k, v, 9);  // positions 9, 10, 11
  // Dense block j at paged block table[j] of 5; block 4 is the other sequence's.
  const std::vector<int32_t> table = {3, 0, 2, 4, 4, 4};  // two sequences of max_blocks 3
  std::vector<float> kp(size_t(per_row * 20), 1000.0f), vp(kp);
  for (int64_t p = 0; p < 12; ++p) {
    const int64_t row = table[size_t(p / block_tokens)] * block_tokens + p % block_tokens;
    std::copy_n(k.begin() + p * per_row, per_row, kp.begin() + row * per_row);
    std::copy_n(v.begin() + p * per_row, per_row, vp.begin() + row * per_row);
  }
  std::vector<float> q4 = q;  // and a fourth token: position 0 of sequence 1, whose row holds v[0]
  q4.insert(q4.begin(), q.begin(), q.begin() + 8 * 4);
  std::copy_n(v.begin(), per_row, vp.begin() + 16 * per_row);
  std::copy_n(k.begin(), per_row, kp.begin() + 16 * per_row);
  const std::vector<int32_t> positions = {0, 9, 10, 11}, seq = {1, 0, 0, 0};
  const KvLayout kv{.positions = positions, .seq = seq, .block_table = table, .max_blocks = 3, .block_tokens = 4};
  CpuRefBackend b;
  Tensor out = b.alloc(DType::F32, {8, 4, 4}, "out");
  b.attention(f32_tensor(q4, {8, 4, 4}), f32_tensor(kp, {8, 2, 20}), f32_tensor(vp, {8, 2, 20}), kv, 0.25f, 0, out);
  const std::vector<float> paged = host_values(out);
  EXPECT_TRUE(std::equal(dense.begin(), dense.end(), paged.begin() + 8 * 4));
  const std::vector<float> first = attend(a, std::vector<float>(q.begin(), q.begin() + 8 * 4), 1, k, v, 0);
  EXPECT_TRUE(std::equal(first.begin(), first.end(), paged.begin()));
}

// ---- matmul, add, scale ----------------------------------------------------------------

TEST(CpuRefMatmul, ResultDoesNotDependOnThreadCount) {
  const int64_t k = 512, n = 1031, m = 3;  // big enough to be split over threads
  const Tensor w = Tensor::from_f32(random_values(size_t(k * n), 60), {k, n}, DType::Q4_K);
  const Tensor x = f32_tensor(random_values(size_t(k * m), 61), {k, m});
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3, 8}) {
    CpuRefBackend b(Accumulation::f32, threads);
    Tensor out = b.alloc(DType::F32, {n, m}, "out");
    b.matmul(w, x, out);
    results.push_back(host_values(out));
  }
  for (size_t i = 1; i < results.size(); ++i) EXPECT_EQ(results[i], results[0]) << i;
}

// Columns are computed in tiles; each output must still be the plain in-order dot
// product, so a column computed alone (m = 1, no tile) gives the same bits.
TEST(CpuRefMatmul, TiledColumnsEqualSingleColumns) {
  const int64_t k = 96, n = 7, m = 19;  // two tiles of 8 and 3 columns left over
  const Tensor w = Tensor::from_f32(random_values(size_t(k * n), 65), {k, n}, DType::Q5_1);
  const std::vector<float> xv = random_values(size_t(k * m), 66);
  for (Accumulation acc : {Accumulation::f32, Accumulation::f64}) {
    CpuRefBackend b(acc);
    Tensor out = b.alloc(DType::F32, {n, m}, "out");
    b.matmul(w, f32_tensor(xv, {k, m}), out);
    const std::vector<float> all = host_values(out);
    for (int64_t j = 0; j < m; ++j) {
      Tensor one = b.alloc(DType::F32, {n, 1}, "one");
      b.matmul(w, f32_tensor(std::vector<float>(xv.begin() + j * k, xv.begin() + (j + 1) * k), {k, 1}), one);
      EXPECT_TRUE(std::ranges::equal(host_values(one), std::span(all).subspan(size_t(j * n), size_t(n)))) << j;
    }
  }
}

// x may be a view with strided rows; the result equals that of a packed copy.
TEST(CpuRefMatmul, StridedActivationRows) {
  const int64_t k = 64, n = 5, m = 3;
  const Tensor w = Tensor::from_f32(random_values(size_t(k * n), 70), {k, n}, DType::Q8_0);
  const Tensor big = f32_tensor(random_values(size_t(k * 2 * m), 71), {k, 2, m});
  const Tensor x = big.slice(1, 1, 1);  // [k, 1, m], rows 2k floats apart
  ASSERT_FALSE(x.is_contiguous());
  CpuRefBackend b;
  Tensor out = b.alloc(DType::F32, {n, 1, m}, "out"), want = b.alloc(DType::F32, {n, 1, m}, "want");
  b.matmul(w, x, out);
  b.matmul(w, x.contiguous(), want);
  EXPECT_EQ(host_values(out), host_values(want));
}

TEST(CpuRefElementwise, AddInPlace) {
  CpuRefBackend b;
  const std::vector<float> av = random_values(12, 80), bv = random_values(4, 81);
  Tensor a = f32_tensor(av, {4, 3});
  b.add(a, f32_tensor(bv, {4}), a);
  const std::vector<float> got = host_values(a);
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(got[i], av[i] + bv[i % 4]);
}

TEST(CpuRefMemory, UploadIsACopyFreeViewAndAllocIsZeroed) {
  CpuRefBackend b;
  EXPECT_EQ(b.name(), "cpu_ref");
  EXPECT_EQ(CpuRefBackend(Accumulation::f64).name(), "cpu_ref64");
  const Tensor host = f32_tensor({1, 2, 3}, {3});
  EXPECT_EQ(b.upload(host).data(), host.data());
  const Tensor z = b.alloc(DType::F16, {5, 2}, "z");
  EXPECT_EQ(z.dtype(), DType::F16);
  EXPECT_EQ(host_values(b.to_host_f32(z)), std::vector<float>(10, 0.0f));
}

// Backend::read_f32's default (through to_host_f32): any type, converted; sizes checked.
TEST(CpuRefReadF32, CopiesIntoTheCallersMemory) {
  CpuRefBackend backend;
  const std::vector<float> values = {1.5f, -2.0f, 3.25f, 0.0f};
  const Tensor t = Tensor::from_f32(values, {2, 2}, DType::F16, "t");
  std::vector<float> out(4);
  backend.read_f32(t, out);
  EXPECT_EQ(out, values);  // exact in f16
  std::vector<float> wrong(3);
  try {
    backend.read_f32(t, wrong);
    FAIL() << "a destination of the wrong size was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has 4 elements, the destination 3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace strata::test
