#include "backend/tensor_parallel/tensor_parallel_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "backend/tensor_parallel/in_process_communicator.h"
#include "backend/tensor_parallel/shard_layout.h"
#include "backend/tensor_parallel/tensor_parallel_held.h"
#include "core/error.h"

namespace strata {

namespace {

Tensor::Strides packed_strides(DType type, const Tensor::Dims& ne) {
  const TypeTraits& t = type_traits(type);
  Tensor::Strides nb{};
  nb[0] = t.type_size;
  nb[1] = size_t(ne[0] / t.block_size) * t.type_size;
  for (size_t d = 2; d < size_t(kMaxDims); ++d) nb[d] = nb[d - 1] * size_t(ne[d - 1]);
  return nb;
}

// The dims of `ne` up to the last one given (the tokens of an activation): split the one before.
int dynamic_split_dim(size_t given_rank) {
  return given_rank >= 2 ? int(given_rank) - 2 : 0;
}

Tensor::Dims dims_of(ShapeRef ne) {
  Tensor::Dims d = {1, 1, 1, 1};
  const auto given = ne.dims();
  if (given.empty() || given.size() > size_t(kMaxDims)) fail("a shape of {} dims (1..{})", given.size(), kMaxDims);
  std::copy(given.begin(), given.end(), d.begin());
  return d;
}

// Copies host f32 tensor `part` (packed) into `out` at `start` along `dim`.
void place(const Tensor& part, Tensor& out, int dim, int64_t start) {
  const Tensor::Dims& ne = part.ne();
  const auto* src = reinterpret_cast<const float*>(part.data());
  for (int64_t i3 = 0; i3 < ne[3]; ++i3) {
    for (int64_t i2 = 0; i2 < ne[2]; ++i2) {
      for (int64_t i1 = 0; i1 < ne[1]; ++i1) {
        for (int64_t i0 = 0; i0 < ne[0]; ++i0) {
          std::array<int64_t, kMaxDims> at = {i0, i1, i2, i3};
          at[size_t(dim)] += start;
          size_t offset = 0;
          for (size_t d = 0; d < size_t(kMaxDims); ++d) offset += size_t(at[d]) * out.nb(int(d));
          std::memcpy(out.mutable_data() + offset, src++, sizeof(float));
        }
      }
    }
  }
}

}  // namespace

TensorParallelBackend::TensorParallelBackend(std::vector<std::unique_ptr<Backend>> parts,
                                             std::unique_ptr<Communicator> comm)
    : parts_(std::move(parts)), comm_(std::move(comm)) {
  if (parts_.empty()) fail("tensor parallel: no part backends");
  for (const auto& p : parts_) {
    if (p == nullptr) fail("tensor parallel: a part backend is missing");
  }
  if (comm_ == nullptr || comm_->size() != n_parts()) {
    fail("tensor parallel: a communicator of {} ranks for {} parts", comm_ ? comm_->size() : 0, n_parts());
  }
  name_ = fmt::format("tp{}:{}", n_parts(), parts_[0]->name());
  scratch_.resize(parts_.size());
}

TensorParallelBackend::~TensorParallelBackend() = default;

// ---- tensors -----------------------------------------------------------------------------

namespace {

// Addresses for proxies, above any a 64-bit process maps at start; a range per tensor, apart.
std::atomic<uintptr_t> next_address{uintptr_t(1) << 46};

}  // namespace

Tensor TensorParallelBackend::make(std::shared_ptr<Held> h) {
  const size_t bytes = size_t(h->nb[3]) * size_t(h->base[3]);
  h->first = next_address.fetch_add((bytes + 2 * kTensorAlignment) & ~(kTensorAlignment - 1));
  if (++made_since_purge_ >= 1024) {
    std::erase_if(held_, [](const auto& entry) { return entry.second.expired(); });
    made_since_purge_ = 0;
  }
  held_[h.get()] = h;
  void* address = const_cast<uint8_t*>(h->address());
  const DType type = h->type;
  const Tensor::Dims ne = h->base;
  std::string name = h->name;
  return Tensor::device(type, ne, address, std::move(h), std::move(name));
}

TensorParallelBackend::Held& TensorParallelBackend::held(const Tensor& t, std::string_view op) const {
  const auto it = held_.find(t.keep_alive().get());
  std::shared_ptr<Held> h = it == held_.end() ? nullptr : it->second.lock();
  if (h == nullptr) fail("{}: {} is not a tensor of backend {}", op, t.describe(), name_);
  return *h;  // alive as long as `t`
}

TensorParallelBackend::Operand TensorParallelBackend::operand(const Tensor& t, std::string_view op) const {
  Operand o;
  o.h = &held(t, op);
  const Held& h = *o.h;
  o.g = geometry_of(t, h.address());
  o.whole_view = o.g.offset == 0 && o.g.ne == h.base;
  for (size_t d = 0; d < size_t(kMaxDims) && o.whole_view; ++d) o.whole_view = h.base[d] == 1 || o.g.nb[d] == h.nb[d];
  if (!h.splittable(n_parts())) return o;
  if (o.whole_view) {
    o.divided_dim = h.split_dim;
  } else if (!type_traits(h.type).is_quantized) {
    o.pv = part_view({h.base, h.split_dim, n_parts()}, type_traits(h.type).type_size, o.g);
    if (o.pv) o.divided_dim = o.pv->divided_dim;
  }
  return o;
}

Tensor TensorParallelBackend::alloc(DType type, ShapeRef ne, std::string name) {
  auto h = std::make_shared<Held>();
  h->type = type;
  h->base = dims_of(ne);
  h->nb = packed_strides(type, h->base);
  h->name = std::move(name);
  h->split_dim = dynamic_split_dim(ne.dims().size());
  return make(std::move(h));
}

Tensor TensorParallelBackend::alloc_placed(DType type, ShapeRef ne, std::string name, const Placement& placement) {
  if (placement.kind != Placement::Kind::kv_heads) return alloc(type, ne, std::move(name));
  const Tensor::Dims base = dims_of(ne);
  const int64_t k = n_parts();
  if (base[1] % k != 0) {
    fail(
        "tensor parallel over {} parts: KV cache '{}' [{}, {}, {}] has {} KV heads, which do not split evenly over {} "
        "parts",
        k, name, base[0], base[1], base[2], base[1], k);
  }
  auto h = std::make_shared<Held>();
  h->type = type;
  h->base = base;
  h->nb = packed_strides(type, base);
  h->name = std::move(name);
  h->split_dim = 1;
  h->split_for_good = true;
  h->whole_valid = false;
  h->parts_valid = true;
  const Tensor::Dims part_ne = h->part_shape(k);
  each_part([&](int, Backend& p) { h->parts.push_back(p.alloc(type, part_ne, h->name)); });
  return make(std::move(h));
}

Tensor TensorParallelBackend::upload(const Tensor& host) {
  auto h = std::make_shared<Held>();
  h->type = host.dtype();
  h->base = host.ne();
  h->nb = packed_strides(h->type, h->base);
  h->name = host.name();
  h->split_dim = dynamic_split_dim(size_t(host.n_dims()));
  each_part([&](int r, Backend& p) {
    if (r == 0 || !host.is_writable()) {
      h->whole.push_back(p.upload(host));
      return;
    }
    // A writable tensor is each part's own (ops may change it in place).
    const Tensor packed = host.contiguous();
    Tensor copy = Tensor::empty(host.dtype(), host.ne(), host.name());
    std::memcpy(copy.mutable_data(), packed.data(), packed.n_bytes());
    h->whole.push_back(p.upload(copy));
  });
  return make(std::move(h));
}

Tensor TensorParallelBackend::upload_placed(const Tensor& host, const Placement& placement) {
  using Kind = Placement::Kind;
  const int64_t k = n_parts();
  int dim = 0;
  switch (placement.kind) {
    case Kind::replicated:
    case Kind::kv_heads:
      weight_bytes_.whole += host.n_bytes();
      return upload(host);
    case Kind::vocab:
      if (host.ne(1) % k != 0 || k == 1) return upload_placed(host, {});
      dim = 1;
      break;
    case Kind::columns:
      dim = host.n_dims() == 1 ? 0 : 1;
      break;
    case Kind::rows:
      dim = 0;
      break;
  }
  const int64_t n = host.ne(dim);
  const int64_t unit = std::max<int64_t>(placement.unit, 1);
  if (n % (k * unit) != 0) {
    if (unit > 1) {
      fail("tensor parallel over {} parts: {} has {} heads of {}, which do not split evenly over {} parts", k,
           host.describe(), n / unit, unit, k);
    }
    fail("tensor parallel over {} parts: {} has {} {}, which do not split evenly over {} parts", k, host.describe(), n,
         dim == 0 && host.n_dims() > 1 ? "columns of input" : "rows of output", k);
  }
  const int64_t len = n / k;
  // Input rows whose parts would cut the type's blocks stay whole: the product is then made
  // whole on every part from a gathered input (correct, without the split's savings).
  if (dim == 0 && len % host.traits().block_size != 0) return upload_placed(host, {});
  auto h = std::make_shared<Held>();
  h->type = host.dtype();
  h->base = host.ne();
  h->nb = packed_strides(h->type, h->base);
  h->name = host.name();
  h->split_dim = dim;
  h->split_for_good = true;
  h->whole_valid = false;
  h->parts_valid = true;
  each_part([&](int r, Backend& p) {
    Tensor piece = host.slice(dim, r * len, len).contiguous();
    piece.set_name(fmt::format("{}#{}", host.name(), r));
    if (r == 0) weight_bytes_.split += piece.n_bytes();
    h->parts.push_back(p.upload(piece));
  });
  return make(std::move(h));
}

// ---- moving between whole and parts ------------------------------------------------------

Tensor& TensorParallelBackend::scratch(int r, int64_t n_elements) {
  Tensor& s = scratch_.at(size_t(r));
  if (s.n_elements() < n_elements) {
    parts_[size_t(r)]->make_current();
    s = parts_[size_t(r)]->alloc(DType::F32, {n_elements}, "tp_gather");
  }
  return s;
}

void TensorParallelBackend::ensure_whole(Held& h) {
  const int64_t k = n_parts();
  if (h.whole.empty()) {
    each_part([&](int, Backend& p) { h.whole.push_back(p.alloc(h.type, h.base, h.name)); });
  }
  if (h.whole_valid) return;
  if (h.split_for_good) fail("tensor parallel: '{}' is split over the parts; this op needs it whole", h.name);
  // All-gather: part q's rows go to rows c * K + q of the whole (c over `outer`).
  const int64_t row = h.row(k), outer = h.outer();
  std::vector<Tensor> send, recv;
  for (int r = 0; r < k; ++r) {
    send.push_back(h.parts[size_t(r)].reshape({row * outer}));
    recv.push_back(outer == 1 ? h.whole[size_t(r)].reshape({row * k})
                              : scratch(r, row * outer * k).slice(0, 0, row * outer * k));
  }
  comm_->all_gather(send, recv);
  if (outer > 1) {  // the gathered [row, outer, K] reordered to [row, K, outer]
    std::vector<int32_t> ids(static_cast<size_t>(outer * k));
    for (int64_t c = 0; c < outer; ++c) {
      for (int64_t q = 0; q < k; ++q) ids[size_t(c * k + q)] = int32_t(q * outer + c);
    }
    each_part([&](int r, Backend& p) {
      Tensor out = h.whole[size_t(r)].reshape({row, outer * k});
      p.get_rows(recv[size_t(r)].reshape({row, outer * k}), ids, out);
    });
  }
  h.whole_valid = true;
}

void TensorParallelBackend::ensure_parts(Held& h) {
  const int64_t k = n_parts();
  if (!h.splittable(k)) {
    fail("tensor parallel: '{}' {} [{}, {}, {}, {}] cannot be split into {} equal parts", h.name, dtype_name(h.type),
         h.base[0], h.base[1], h.base[2], h.base[3], k);
  }
  if (h.parts.empty()) {
    const Tensor::Dims ne = h.part_shape(k);
    each_part([&](int, Backend& p) { h.parts.push_back(p.alloc(h.type, ne, h.name)); });
  }
  if (h.parts_valid) return;
  if (h.whole.empty()) ensure_whole(h);  // zeros
  // Each part takes its rows: c * K + r of the whole (c over `outer`).
  const int64_t row = h.row(k), outer = h.outer();
  each_part([&](int r, Backend& p) {
    std::vector<int32_t> ids(static_cast<size_t>(outer));
    for (int64_t c = 0; c < outer; ++c) ids[size_t(c)] = int32_t(c * k + r);
    Tensor out = h.parts[size_t(r)].reshape({row, outer});
    p.get_rows(h.whole[size_t(r)].reshape({row, outer * k}), ids, out);
  });
  h.parts_valid = true;
}

Tensor TensorParallelBackend::on_part(Operand& o, Mode mode, int r) {
  Held& h = *o.h;
  if (mode == Mode::whole) {
    const Tensor& w = h.whole.at(size_t(r));
    return o.whole_view ? w : view_with(w, o.g);
  }
  const Tensor& p = h.parts.at(size_t(r));
  if (o.whole_view) return p;
  if (!o.pv) fail("tensor parallel: a view of '{}' does not map onto its parts", h.name);
  return view_with(p, o.pv->geometry);
}

void TensorParallelBackend::before_write(Operand& out, Mode mode) {
  Held& h = *out.h;
  if (mode == Mode::whole) {
    if (h.split_for_good) fail("tensor parallel: '{}' is split over the parts; this op writes it whole", h.name);
    if (!out.whole_view || h.whole.empty()) ensure_whole(h);  // keeps what the op does not write
  } else if (!out.whole_view || h.parts.empty()) {
    ensure_parts(h);
  }
}

void TensorParallelBackend::after_write(Operand& out, Mode mode) {
  Held& h = *out.h;
  if (h.split_for_good) return;
  h.whole_valid = mode == Mode::whole;
  h.parts_valid = mode == Mode::parts;
}

TensorParallelBackend::Mode TensorParallelBackend::elementwise_mode(std::initializer_list<Operand*> inputs,
                                                                    std::initializer_list<Operand*> outputs,
                                                                    bool rows_whole) const {
  bool wanted = false;
  for (const Operand* in : inputs) wanted |= in->h->split_for_good || (in->h->parts_valid && !in->h->whole_valid);
  if (!wanted) return Mode::whole;
  for (auto list : {inputs, outputs}) {
    for (const Operand* o : list) {
      if (o->divided_dim < 0 || (rows_whole && o->divided_dim == 0)) return Mode::whole;
    }
  }
  return Mode::parts;
}

// ---- reading -----------------------------------------------------------------------------

Tensor TensorParallelBackend::to_host_f32(const Tensor& t) {
  Operand o = operand(t, "to_host_f32");
  Held& h = *o.h;
  if (h.whole_valid || o.divided_dim < 0) {
    ensure_whole(h);
    parts_[0]->make_current();
    return parts_[0]->to_host_f32(on_part(o, Mode::whole, 0));
  }
  // The parts, assembled on the host along the view's divided dim.
  Tensor out = Tensor::empty(DType::F32, t.ne(), t.name());
  each_part([&](int r, Backend& p) {
    const Tensor part = p.to_host_f32(on_part(o, Mode::parts, r));
    place(part.contiguous(), out, o.divided_dim, r * part.ne(o.divided_dim));
  });
  return out;
}

size_t TensorParallelBackend::prepare_matmul_weight(const Tensor& w) {
  Operand o = operand(w, "prepare_matmul_weight");
  if (!o.whole_view) fail("prepare_matmul_weight: {} is a view, not a matrix of this backend", w.describe());
  Held& h = *o.h;
  if (!h.split_for_good) ensure_whole(h);
  size_t bytes = 0;
  each_part([&](int r, Backend& p) {
    bytes += p.prepare_matmul_weight(h.split_for_good ? h.parts[size_t(r)] : h.whole[size_t(r)]);
  });
  return bytes;
}

void TensorParallelBackend::synchronize() {
  each_part([](int, Backend& p) { p.synchronize(); });
}

std::string TensorParallelBackend::device_name() const {
  return fmt::format("{} x {}", n_parts(), parts_[0]->device_name());
}

std::optional<size_t> TensorParallelBackend::device_free_memory() const {
  // What fits when it is split over the parts (the KV cache is): the smallest part's free
  // memory K times.
  std::optional<size_t> least;
  for (const auto& p : parts_) {
    const std::optional<size_t> free = p->device_free_memory();
    if (!free) return std::nullopt;
    least = least ? std::min(*least, *free) : *free;
  }
  return *least * size_t(n_parts());
}

std::unique_ptr<TensorParallelBackend> make_in_process_tensor_parallel(
    int k, const std::function<std::unique_ptr<Backend>()>& make_part) {
  if (k < 1) fail("tensor parallel: {} parts (at least 1)", k);
  std::vector<std::unique_ptr<Backend>> parts;
  for (int r = 0; r < k; ++r) parts.push_back(make_part());
  return std::make_unique<TensorParallelBackend>(std::move(parts), std::make_unique<InProcessCommunicator>(k));
}

}  // namespace strata
