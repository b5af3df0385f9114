// The mixture-of-experts ops of TensorParallelBackend: whole on every part, as the experts'
// weights are (uploaded without a placement).
#include "backend/tensor_parallel/tensor_parallel_held.h"

namespace strata {

void TensorParallelBackend::route_top_k(const Tensor& logits, Tensor& ids, Tensor& weights) {
  Operand lo = operand(logits, "route_top_k"), io = operand(ids, "route_top_k"), wo = operand(weights, "route_top_k");
  ensure_whole(*lo.h);
  before_write(io, Mode::whole);
  before_write(wo, Mode::whole);
  each_part([&](int r, Backend& p) {
    Tensor ids_r = on_part(io, Mode::whole, r), weights_r = on_part(wo, Mode::whole, r);
    p.route_top_k(on_part(lo, Mode::whole, r), ids_r, weights_r);
  });
  after_write(io, Mode::whole);
  after_write(wo, Mode::whole);
}

void TensorParallelBackend::matmul_experts(const Tensor& w, const Tensor& x, const Tensor& ids, Tensor& out) {
  Operand wo = operand(w, "matmul_experts"), xo = operand(x, "matmul_experts"), io = operand(ids, "matmul_experts"),
          oo = operand(out, "matmul_experts");
  for (Operand* o : {&wo, &xo, &io}) ensure_whole(*o->h);
  before_write(oo, Mode::whole);
  each_part([&](int r, Backend& p) {
    Tensor out_r = on_part(oo, Mode::whole, r);
    p.matmul_experts(on_part(wo, Mode::whole, r), on_part(xo, Mode::whole, r), on_part(io, Mode::whole, r), out_r);
  });
  after_write(oo, Mode::whole);
}

void TensorParallelBackend::sum_experts(const Tensor& y, const Tensor& weights, Tensor& out) {
  Operand yo = operand(y, "sum_experts"), wo = operand(weights, "sum_experts"), oo = operand(out, "sum_experts");
  for (Operand* o : {&yo, &wo}) ensure_whole(*o->h);
  before_write(oo, Mode::whole);
  each_part([&](int r, Backend& p) {
    Tensor out_r = on_part(oo, Mode::whole, r);
    p.sum_experts(on_part(yo, Mode::whole, r), on_part(wo, Mode::whole, r), out_r);
  });
  after_write(oo, Mode::whole);
}

void TensorParallelBackend::read_i32(const Tensor& t, std::span<int32_t> out) {
  Operand o = operand(t, "read_i32");
  ensure_whole(*o.h);
  parts_[0]->make_current();
  parts_[0]->read_i32(on_part(o, Mode::whole, 0), out);
}

}  // namespace strata
