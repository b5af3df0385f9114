// Op cases for the backend harness (op_harness.h): rope, store_kv and attention, with
// expectations written directly in double precision from the definitions in backend.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "backend/op_cases_basic.h"

namespace strata::test {

// ---- rope ----------------------------------------------------------------------------

// x [head_dim, n_heads, n_tokens] rotated at `positions`; expectation from the definition
// in backend.h: pair i turns by pos * freq_scale * base^(-2i/n_rot) / factor_i.
inline OpCase rope_case(int64_t head_dim, int64_t n_heads, std::vector<int32_t> positions, RopeConfig config,
                        uint32_t seed) {
  const int64_t n_tokens = int64_t(positions.size());
  auto x = std::make_shared<std::vector<float>>(random_values(size_t(head_dim * n_heads * n_tokens), seed));
  const std::string name =
      fmt::format("rope/{}/d{}_rot{}_h{}_t{}{}{}", config.neox ? "neox" : "normal", head_dim, config.n_rot, n_heads,
                  n_tokens, config.freq_scale != 1.0f ? "_scaled" : "", config.freq_factors.empty() ? "" : "_factors");
  return OpCase{name, "rope", kNmseElementwise,
                [=](Backend& b) {
                  Tensor xd = upload_values(b, *x, {head_dim, n_heads, n_tokens});
                  b.rope(xd, positions, config);
                  return download(b, xd);
                },
                [=] {
                  std::vector<double> out = to_double(*x);
                  const int64_t half = config.n_rot / 2;
                  for (int64_t t = 0; t < n_tokens; ++t) {
                    for (int64_t h = 0; h < n_heads; ++h) {
                      double* r = &out[size_t((t * n_heads + h) * head_dim)];
                      for (int64_t i = 0; i < half; ++i) {
                        const double factor = config.freq_factors.empty() ? 1.0 : config.freq_factors[size_t(i)];
                        const double theta = positions[size_t(t)] * double(config.freq_scale) *
                                             std::pow(double(config.freq_base), -2.0 * double(i) / config.n_rot) /
                                             factor;
                        const int64_t a = config.neox ? i : 2 * i;
                        const int64_t c = config.neox ? i + half : 2 * i + 1;
                        const double x0 = r[a], x1 = r[c];
                        r[a] = x0 * std::cos(theta) - x1 * std::sin(theta);
                        r[c] = x0 * std::sin(theta) + x1 * std::cos(theta);
                      }
                    }
                  }
                  return out;
                }};
}

// ---- store_kv and attention ------------------------------------------------------------

struct AttentionShape {
  int64_t head_dim, n_heads, n_kv_heads, n_tokens, n_past, n_ctx;
  DType cache_type;
  int64_t window = 0;  // sliding window (0: none)
};

// The cache as the backend stores it: f16 caches hold rounded values.
inline std::vector<double> cache_values(const std::vector<float>& v, DType type) {
  std::vector<double> out = to_double(v);
  if (type == DType::F16) {
    for (auto& x : out) x = round_to_f16(x);
  }
  return out;
}

// Stores src [head_dim, n_kv_heads, n_tokens] at `pos` of a zeroed cache; the output is
// the whole cache, so writes outside pos..pos+n_tokens-1 are caught too.
inline OpCase store_kv_case(int64_t head_dim, int64_t n_kv_heads, int64_t n_tokens, int64_t pos, int64_t n_ctx,
                            DType type, uint32_t seed) {
  auto src = std::make_shared<std::vector<float>>(random_values(size_t(head_dim * n_kv_heads * n_tokens), seed));
  return OpCase{
      fmt::format("store_kv/{}/d{}_kv{}_t{}_pos{}_ctx{}", dtype_name(type), head_dim, n_kv_heads, n_tokens, pos, n_ctx),
      "store_kv", kNmseExact,
      [=](Backend& b) {
        Tensor s = upload_values(b, *src, {head_dim, n_kv_heads, n_tokens});
        Tensor cache = b.alloc(type, {head_dim, n_kv_heads, n_ctx}, "cache");
        b.store_kv(s, cache, DenseKvLayout(pos, n_tokens, n_ctx));
        return download(b, cache);
      },
      [=] {
        std::vector<double> cache(size_t(head_dim * n_kv_heads * n_ctx), 0.0);
        const std::vector<double> stored = cache_values(*src, type);
        const size_t offset = size_t(pos * head_dim * n_kv_heads);
        for (size_t i = 0; i < stored.size(); ++i) cache[offset + i] = stored[i];
        return cache;
      }};
}

// Caches hold n_ctx random positions; those after n_past + n_tokens - 1 get huge values,
// so that reading past the causal window shows; with a sliding window, keys before it are
// large too (scaled by 30), so that reading them shows.
inline OpCase attention_case(AttentionShape s, uint32_t seed) {
  const int64_t n_cache = s.head_dim * s.n_kv_heads * s.n_ctx;
  auto q = std::make_shared<std::vector<float>>(random_values(size_t(s.head_dim * s.n_heads * s.n_tokens), seed));
  auto k = std::make_shared<std::vector<float>>(random_values(size_t(n_cache), seed + 1));
  auto v = std::make_shared<std::vector<float>>(random_values(size_t(n_cache), seed + 2));
  const size_t n_used = size_t(s.head_dim * s.n_kv_heads * (s.n_past + s.n_tokens));
  for (size_t i = n_used; i < size_t(n_cache); ++i) (*k)[i] = (*v)[i] = 1000.0f;
  if (s.window > 0) {
    const size_t n_outside = size_t(s.head_dim * s.n_kv_heads * std::max<int64_t>(0, s.n_past + 1 - s.window));
    for (size_t i = 0; i < n_outside; ++i) (*k)[i] *= 30.0f, (*v)[i] *= 30.0f;
  }
  const float scale = 1.0f / std::sqrt(float(s.head_dim));
  return OpCase{
      fmt::format("attention/{}/d{}_h{}_kv{}_t{}_past{}_ctx{}{}", dtype_name(s.cache_type), s.head_dim, s.n_heads,
                  s.n_kv_heads, s.n_tokens, s.n_past, s.n_ctx, s.window > 0 ? fmt::format("_win{}", s.window) : ""),
      "attention", kNmseAttention,
      [=](Backend& b) {
        Tensor qd = upload_values(b, *q, {s.head_dim, s.n_heads, s.n_tokens});
        Tensor kd = upload_values(b, *k, {s.head_dim, s.n_kv_heads, s.n_ctx}, s.cache_type);
        Tensor vd = upload_values(b, *v, {s.head_dim, s.n_kv_heads, s.n_ctx}, s.cache_type);
        Tensor out = b.alloc(DType::F32, {s.head_dim, s.n_heads, s.n_tokens}, "out");
        b.attention(qd, kd, vd, DenseKvLayout(s.n_past, s.n_tokens, s.n_ctx), scale, s.window, out);
        return download(b, out);
      },
      [=] {
        const std::vector<double> kc = cache_values(*k, s.cache_type), vc = cache_values(*v, s.cache_type);
        const int64_t group = s.n_heads / s.n_kv_heads;
        std::vector<double> out;
        for (int64_t t = 0; t < s.n_tokens; ++t) {
          for (int64_t h = 0; h < s.n_heads; ++h) {
            const int64_t n_kv = s.n_past + t + 1;
            const int64_t first = s.window > 0 ? std::max<int64_t>(0, n_kv - s.window) : 0;
            auto kv_at = [&](const std::vector<double>& c, int64_t pos, int64_t d) {
              return c[size_t((pos * s.n_kv_heads + h / group) * s.head_dim + d)];
            };
            std::vector<double> w(static_cast<size_t>(n_kv), -INFINITY);  // -inf: outside
            double max = -INFINITY, sum = 0;
            for (int64_t p = first; p < n_kv; ++p) {
              double dot = 0;
              for (int64_t d = 0; d < s.head_dim; ++d) {
                dot += double((*q)[size_t((t * s.n_heads + h) * s.head_dim + d)]) * kv_at(kc, p, d);
              }
              w[size_t(p)] = dot * double(scale);
              max = std::max(max, w[size_t(p)]);
            }
            for (auto& x : w) sum += (x = std::exp(x - max));
            for (int64_t d = 0; d < s.head_dim; ++d) {
              double o = 0;
              for (int64_t p = 0; p < n_kv; ++p) o += w[size_t(p)] / sum * kv_at(vc, p, d);
              out.push_back(o);
            }
          }
        }
        return out;
      }};
}

}  // namespace strata::test
