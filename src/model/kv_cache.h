// Keys and values of every past position, per layer, on the backend's device: n_rows rows
// [head_dim, n_head_kv] per layer, which a KvLayout maps the positions of one sequence (a dense
// cache: row = position) or of many (paged: blocks of rows, a block table per sequence) onto.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"

namespace strata {

class KvCache {
public:
  // type: F32 or F16.
  KvCache(Backend& backend, const ModelConfig& config, int64_t n_rows, DType type);

  int64_t n_rows() const { return n_rows_; }
  DType type() const { return type_; }
  size_t n_bytes() const;
  Tensor& k(int64_t layer) { return k_.at(size_t(layer)); }  // [head_dim, n_head_kv, n_rows]
  Tensor& v(int64_t layer) { return v_.at(size_t(layer)); }  // [head_dim, n_head_kv, n_rows]
  // Distinct for every cache constructed (copies share it, and their tensors): what a
  // recorded decode step that wrote into this cache's tensors is keyed by.
  uint64_t id() const { return id_; }

private:
  int64_t n_rows_;
  DType type_;
  uint64_t id_;
  std::vector<Tensor> k_;
  std::vector<Tensor> v_;
};

}  // namespace strata
