// Op cases for store_kv and attention over a paged KV cache (KvLayout): several sequences whose
// blocks lie shuffled in one cache, a batch mixing decode tokens and prompt chunks in any order,
// expectations written directly in double precision from the definitions in backend.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/op_cases_attention.h"

namespace strata::test {

// Sequences of `lengths` positions (the last `n_new[s]` of them are the batch's tokens) in a
// cache of n_blocks blocks of block_tokens rows, each sequence's blocks drawn at random;
// attention with a sliding window where window > 0.
struct PagedShape {
  int64_t head_dim, n_heads, n_kv_heads, block_tokens, n_blocks;
  std::vector<int64_t> lengths, n_new;
  DType cache_type;
  int64_t window = 0;
};

// A batch over a PagedShape: the arrays of its KvLayout and which cache rows hold positions.
struct PagedBatch {
  std::vector<int32_t> positions, seq, block_table;
  int64_t max_blocks = 0;
  std::vector<bool> used;  // [n_rows] rows holding a position of some sequence

  KvLayout layout(int64_t block_tokens) const {
    return {.positions = positions,
            .seq = seq,
            .block_table = block_table,
            .max_blocks = max_blocks,
            .block_tokens = block_tokens};
  }
};

inline PagedBatch paged_batch(const PagedShape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  PagedBatch b;
  for (const int64_t len : s.lengths)
    b.max_blocks = std::max(b.max_blocks, (len + s.block_tokens - 1) / s.block_tokens);
  std::vector<int32_t> free(size_t(s.n_blocks));
  for (size_t i = 0; i < free.size(); ++i) free[i] = int32_t(i);
  std::shuffle(free.begin(), free.end(), rng);
  b.block_table.assign(s.lengths.size() * size_t(b.max_blocks), 0);
  b.used.assign(size_t(s.n_blocks * s.block_tokens), false);
  for (size_t q = 0; q < s.lengths.size(); ++q) {
    for (int64_t j = 0; j * s.block_tokens < s.lengths[q]; ++j) {
      b.block_table[q * size_t(b.max_blocks) + size_t(j)] = free.back();
      free.pop_back();
    }
  }
  const KvLayout kv = b.layout(s.block_tokens);
  for (size_t q = 0; q < s.lengths.size(); ++q) {
    for (int64_t p = 0; p < s.lengths[q]; ++p) b.used[size_t(kv.row(int64_t(q), p))] = true;
    for (int64_t p = s.lengths[q] - s.n_new[q]; p < s.lengths[q]; ++p) {
      b.positions.push_back(int32_t(p));
      b.seq.push_back(int32_t(q));
    }
  }
  // Tokens in a shuffled order: a batch need not group them by sequence.
  std::vector<size_t> order(b.positions.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  PagedBatch shuffled = b;
  for (size_t i = 0; i < order.size(); ++i) {
    shuffled.positions[i] = b.positions[order[i]];
    shuffled.seq[i] = b.seq[order[i]];
  }
  return shuffled;
}

inline std::string paged_name(const char* op, const PagedShape& s) {
  std::string lens;
  for (size_t q = 0; q < s.lengths.size(); ++q) lens += fmt::format("_{}+{}", s.lengths[q] - s.n_new[q], s.n_new[q]);
  return fmt::format("{}/paged/{}/d{}_h{}_kv{}_bt{}_blocks{}{}{}", op, dtype_name(s.cache_type), s.head_dim, s.n_heads,
                     s.n_kv_heads, s.block_tokens, s.n_blocks, lens,
                     s.window > 0 ? fmt::format("_win{}", s.window) : "");
}

// Stores the batch's tokens into a zeroed cache; the output is the whole cache, so writes to
// any other row are caught.
inline OpCase paged_store_kv_case(const PagedShape& s, uint32_t seed) {
  auto b = std::make_shared<PagedBatch>(paged_batch(s, seed));
  const int64_t n_tokens = int64_t(b->positions.size()), n_rows = s.n_blocks * s.block_tokens;
  auto src = std::make_shared<std::vector<float>>(random_values(size_t(s.head_dim * s.n_kv_heads * n_tokens), seed));
  return OpCase{paged_name("store_kv", s), "store_kv", kNmseExact,
                [=](Backend& be) {
                  Tensor x = upload_values(be, *src, {s.head_dim, s.n_kv_heads, n_tokens});
                  Tensor cache = be.alloc(s.cache_type, {s.head_dim, s.n_kv_heads, n_rows}, "cache");
                  be.store_kv(x, cache, b->layout(s.block_tokens));
                  return download(be, cache);
                },
                [=] {
                  const KvLayout kv = b->layout(s.block_tokens);
                  const int64_t per_token = s.head_dim * s.n_kv_heads;
                  std::vector<double> cache(size_t(per_token * n_rows), 0.0);
                  const std::vector<double> stored = cache_values(*src, s.cache_type);
                  for (int64_t t = 0; t < n_tokens; ++t) {
                    const int64_t row = kv.row(kv.seq[size_t(t)], kv.positions[size_t(t)]);
                    std::copy_n(stored.begin() + t * per_token, per_token, cache.begin() + row * per_token);
                  }
                  return cache;
                }};
}

// Caches of random keys and values in the rows the sequences use and huge values elsewhere,
// so that reading a row of another sequence, or none, shows.
inline OpCase paged_attention_case(const PagedShape& s, uint32_t seed) {
  auto b = std::make_shared<PagedBatch>(paged_batch(s, seed));
  const int64_t n_tokens = int64_t(b->positions.size()), n_rows = s.n_blocks * s.block_tokens;
  const int64_t per_row = s.head_dim * s.n_kv_heads;
  auto q = std::make_shared<std::vector<float>>(random_values(size_t(s.head_dim * s.n_heads * n_tokens), seed));
  auto k = std::make_shared<std::vector<float>>(random_values(size_t(per_row * n_rows), seed + 1));
  auto v = std::make_shared<std::vector<float>>(random_values(size_t(per_row * n_rows), seed + 2));
  for (int64_t r = 0; r < n_rows; ++r) {
    if (b->used[size_t(r)]) continue;
    std::fill_n(k->begin() + r * per_row, per_row, 1000.0f);
    std::fill_n(v->begin() + r * per_row, per_row, 1000.0f);
  }
  const float scale = 1.0f / std::sqrt(float(s.head_dim));
  return OpCase{paged_name("attention", s), "attention", kNmseAttention,
                [=](Backend& be) {
                  Tensor qd = upload_values(be, *q, {s.head_dim, s.n_heads, n_tokens});
                  Tensor kd = upload_values(be, *k, {s.head_dim, s.n_kv_heads, n_rows}, s.cache_type);
                  Tensor vd = upload_values(be, *v, {s.head_dim, s.n_kv_heads, n_rows}, s.cache_type);
                  Tensor out = be.alloc(DType::F32, {s.head_dim, s.n_heads, n_tokens}, "out");
                  be.attention(qd, kd, vd, b->layout(s.block_tokens), scale, s.window, out);
                  return download(be, out);
                },
                [=] {
                  const KvLayout kv = b->layout(s.block_tokens);
                  const std::vector<double> kc = cache_values(*k, s.cache_type), vc = cache_values(*v, s.cache_type);
                  const int64_t group = s.n_heads / s.n_kv_heads;
                  std::vector<double> out;
                  for (int64_t t = 0; t < n_tokens; ++t) {
                    const int64_t n_kv = kv.positions[size_t(t)] + 1, seq = kv.seq[size_t(t)];
                    const int64_t first = s.window > 0 ? std::max<int64_t>(0, n_kv - s.window) : 0;
                    for (int64_t h = 0; h < s.n_heads; ++h) {
                      auto at = [&](const std::vector<double>& c, int64_t p, int64_t d) {
                        return c[size_t((kv.row(seq, p) * s.n_kv_heads + h / group) * s.head_dim + d)];
                      };
                      std::vector<double> w(static_cast<size_t>(n_kv), -INFINITY);  // -inf: outside
                      double max = -INFINITY, sum = 0;
                      for (int64_t p = first; p < n_kv; ++p) {
                        double dot = 0;
                        for (int64_t d = 0; d < s.head_dim; ++d) {
                          dot += double((*q)[size_t((t * s.n_heads + h) * s.head_dim + d)]) * at(kc, p, d);
                        }
                        w[size_t(p)] = dot * double(scale);
                        max = std::max(max, w[size_t(p)]);
                      }
                      for (auto& x : w) sum += (x = std::exp(x - max));
                      for (int64_t d = 0; d < s.head_dim; ++d) {
                        double o = 0;
                        for (int64_t p = 0; p < n_kv; ++p) o += w[size_t(p)] / sum * at(vc, p, d);
                        out.push_back(o);
                      }
                    }
                  }
                  return out;
                }};
}

}  // namespace strata::test
