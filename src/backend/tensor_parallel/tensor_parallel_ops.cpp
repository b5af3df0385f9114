// The plain ops of TensorParallelBackend: each on every part, whole or on the parts
// (tensor_parallel_backend.h says which).
#include "backend/tensor_parallel/tensor_parallel_held.h"
#include "core/error.h"

namespace strata {

// ---- ops ---------------------------------------------------------------------------------

void TensorParallelBackend::get_rows(const Tensor& table, std::span<const int32_t> ids, Tensor& out) {
  Operand t = operand(table, "get_rows"), o = operand(out, "get_rows");
  ensure_whole(*t.h);
  before_write(o, Mode::whole);
  each_part([&](int r, Backend& p) {
    Tensor out_r = on_part(o, Mode::whole, r);
    p.get_rows(on_part(t, Mode::whole, r), ids, out_r);
  });
  after_write(o, Mode::whole);
}

void TensorParallelBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  Operand xo = operand(x, "rms_norm"), wo = operand(weight, "rms_norm"), oo = operand(out, "rms_norm");
  const Mode m = elementwise_mode({&xo}, {&oo}, true);
  m == Mode::whole ? ensure_whole(*xo.h) : ensure_parts(*xo.h);
  ensure_whole(*wo.h);
  before_write(oo, m);
  each_part([&](int r, Backend& p) {
    Tensor out_r = on_part(oo, m, r);
    p.rms_norm(on_part(xo, m, r), on_part(wo, Mode::whole, r), eps, out_r);
  });
  after_write(oo, m);
}

void TensorParallelBackend::matmul(const Tensor& w, const Tensor& x, Tensor& out) {
  Operand wo = operand(w, "matmul"), xo = operand(x, "matmul"), oo = operand(out, "matmul");
  const Held& wh = *wo.h;
  if (!wh.split_for_good) {  // a whole weight: the whole product on every part
    ensure_whole(*xo.h);
    before_write(oo, Mode::whole);
    each_part([&](int r, Backend& p) {
      Tensor out_r = on_part(oo, Mode::whole, r);
      p.matmul(on_part(wo, Mode::whole, r), on_part(xo, Mode::whole, r), out_r);
    });
    after_write(oo, Mode::whole);
    return;
  }
  if (!wo.whole_view) fail("matmul: a view of {}, which is split over the parts", w.describe());
  if (wh.split_dim == 1) {  // split by output columns: each part makes its rows of out
    if (oo.divided_dim != 0)
      fail("matmul: {} cannot hold the parts of the product by {}", out.describe(), w.describe());
    ensure_whole(*xo.h);
    before_write(oo, Mode::parts);
    each_part([&](int r, Backend& p) {
      Tensor out_r = on_part(oo, Mode::parts, r);
      p.matmul(on_part(wo, Mode::parts, r), on_part(xo, Mode::whole, r), out_r);
    });
    after_write(oo, Mode::parts);
    return;
  }
  // Split by input rows: each part multiplies its part of x; the partial products summed.
  if (xo.divided_dim != 0) fail("matmul: {} is not split as the input rows of {}", x.describe(), w.describe());
  if (!out.is_contiguous())
    fail("matmul: {} by {} must be contiguous (it is all-reduced)", out.describe(), w.describe());
  ensure_parts(*xo.h);
  before_write(oo, Mode::whole);
  std::vector<Tensor> partial;
  each_part([&](int r, Backend& p) {
    Tensor out_r = on_part(oo, Mode::whole, r);
    p.matmul(on_part(wo, Mode::parts, r), on_part(xo, Mode::parts, r), out_r);
    partial.push_back(out_r);
  });
  comm_->all_reduce_sum(partial);
  after_write(oo, Mode::whole);
}

void TensorParallelBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  Operand ao = operand(a, "add"), bo = operand(b, "add"), oo = operand(out, "add");
  const Mode m = elementwise_mode({&ao, &bo}, {&oo}, false);
  for (Operand* o : {&ao, &bo}) m == Mode::whole ? ensure_whole(*o->h) : ensure_parts(*o->h);
  before_write(oo, m);
  each_part([&](int r, Backend& p) {
    Tensor out_r = on_part(oo, m, r);
    p.add(on_part(ao, m, r), on_part(bo, m, r), out_r);
  });
  after_write(oo, m);
}

void TensorParallelBackend::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  Operand go = operand(gate, "swiglu"), uo = operand(up, "swiglu"), oo = operand(out, "swiglu");
  const Mode m = elementwise_mode({&go, &uo}, {&oo}, false);
  for (Operand* o : {&go, &uo}) m == Mode::whole ? ensure_whole(*o->h) : ensure_parts(*o->h);
  before_write(oo, m);
  each_part([&](int r, Backend& p) {
    Tensor out_r = on_part(oo, m, r);
    p.swiglu(on_part(go, m, r), on_part(uo, m, r), out_r);
  });
  after_write(oo, m);
}

void TensorParallelBackend::geglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  Operand go = operand(gate, "geglu"), uo = operand(up, "geglu"), oo = operand(out, "geglu");
  const Mode m = elementwise_mode({&go, &uo}, {&oo}, false);
  for (Operand* o : {&go, &uo}) m == Mode::whole ? ensure_whole(*o->h) : ensure_parts(*o->h);
  before_write(oo, m);
  each_part([&](int r, Backend& p) {
    Tensor out_r = on_part(oo, m, r);
    p.geglu(on_part(go, m, r), on_part(uo, m, r), out_r);
  });
  after_write(oo, m);
}

void TensorParallelBackend::scale(const Tensor& x, float s, Tensor& out) {
  Operand xo = operand(x, "scale"), oo = operand(out, "scale");
  const Mode m = elementwise_mode({&xo}, {&oo}, false);
  m == Mode::whole ? ensure_whole(*xo.h) : ensure_parts(*xo.h);
  before_write(oo, m);
  each_part([&](int r, Backend& p) {
    Tensor out_r = on_part(oo, m, r);
    p.scale(on_part(xo, m, r), s, out_r);
  });
  after_write(oo, m);
}

void TensorParallelBackend::rope(Tensor& x, std::span<const int32_t> positions, const RopeConfig& config) {
  Operand xo = operand(x, "rope");
  const Mode m = elementwise_mode({&xo}, {&xo}, true);
  m == Mode::whole ? ensure_whole(*xo.h) : ensure_parts(*xo.h);
  each_part([&](int r, Backend& p) {
    Tensor x_r = on_part(xo, m, r);
    p.rope(x_r, positions, config);
  });
  after_write(xo, m);
}

void TensorParallelBackend::store_kv(const Tensor& src, Tensor& cache, const KvLayout& kv) {
  Operand so = operand(src, "store_kv"), co = operand(cache, "store_kv");
  const Mode m = co.h->split_for_good ? Mode::parts : Mode::whole;
  if (m == Mode::parts && (so.divided_dim != 1 || co.divided_dim != 1)) {
    fail("store_kv: {} is not split by KV heads as the cache {} is", src.describe(), cache.describe());
  }
  for (Operand* o : {&so, &co}) m == Mode::whole ? ensure_whole(*o->h) : ensure_parts(*o->h);
  each_part([&](int r, Backend& p) {
    Tensor cache_r = on_part(co, m, r);
    p.store_kv(on_part(so, m, r), cache_r, kv);
  });
  after_write(co, m);
}

void TensorParallelBackend::attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv,
                                      float scale, int64_t window, Tensor& out) {
  Operand qo = operand(q, "attention"), ko = operand(k_cache, "attention"), vo = operand(v_cache, "attention"),
          oo = operand(out, "attention");
  const Mode m = ko.h->split_for_good || vo.h->split_for_good ? Mode::parts : Mode::whole;
  if (m == Mode::parts) {
    for (const Operand* o : {&qo, &ko, &vo, &oo}) {
      if (o->divided_dim != 1) {
        fail("attention: {}, {}, {} and {} are not all split by heads", q.describe(), k_cache.describe(),
             v_cache.describe(), out.describe());
      }
    }
  }
  for (Operand* o : {&qo, &ko, &vo}) m == Mode::whole ? ensure_whole(*o->h) : ensure_parts(*o->h);
  before_write(oo, m);
  each_part([&](int r, Backend& p) {
    Tensor out_r = on_part(oo, m, r);
    p.attention(on_part(qo, m, r), on_part(ko, m, r), on_part(vo, m, r), kv, scale, window, out_r);
  });
  after_write(oo, m);
}

}  // namespace strata
