#include "backend/tensor_parallel/shard_layout.h"

#include <array>
#include <utility>
#include <vector>

#include "core/error.h"

namespace strata {

std::optional<PartView> part_view(const SplitLayout& split, size_t elem_bytes, const ViewGeometry& view) {
  int64_t inner = 1;  // elements below the split dim
  for (int d = 0; d < split.dim; ++d) inner *= split.base[size_t(d)];
  const int64_t whole = split.base[size_t(split.dim)];
  const int64_t k = split.parts;
  if (k < 1 || whole % k != 0 || elem_bytes == 0 || view.offset % elem_bytes != 0) return std::nullopt;
  const int64_t span = inner * whole;  // elements of one step of the dims above the split dim
  // The offset as (a0, b0, c0): below, along and above the split dim; the view starts at b0 = 0.
  const int64_t offset = int64_t(view.offset / elem_bytes);
  const int64_t a0 = offset % inner;
  const int64_t c0 = offset / span;
  if ((offset / inner) % whole != 0) return std::nullopt;

  PartView part{view, -1};
  int64_t a_last = a0;                                    // the last element below the split dim the view reaches
  std::array<std::pair<int64_t, int>, kMaxDims> along{};  // (stride, dim) of dims over the split dim
  size_t n_along = 0;
  for (int d = 0; d < kMaxDims; ++d) {
    const int64_t ne = view.ne[size_t(d)];
    if (ne == 1) continue;
    if (ne < 1 || view.nb[size_t(d)] % elem_bytes != 0) return std::nullopt;
    const int64_t stride = int64_t(view.nb[size_t(d)] / elem_bytes);
    if (stride < inner) {
      a_last += stride * (ne - 1);
    } else if (stride < span) {
      if (stride % inner != 0) return std::nullopt;
      along[n_along++] = {stride, d};
    } else {
      if (stride % span != 0) return std::nullopt;
      part.geometry.nb[size_t(d)] = size_t(stride / k) * elem_bytes;  // (stride / span) steps of inner * whole / k
    }
  }
  if (a_last >= inner || n_along == 0) return std::nullopt;
  // The dims over the split dim tile it: strides inner, inner * ne, ... up to inner * whole.
  for (size_t i = 1; i < n_along; ++i) {  // by stride (at most 4: insertion)
    for (size_t j = i; j > 0 && along[j].first < along[j - 1].first; --j) std::swap(along[j], along[j - 1]);
  }
  int64_t expected = inner;
  for (size_t i = 0; i < n_along; ++i) {
    if (along[i].first != expected) return std::nullopt;
    expected *= part.geometry.ne[size_t(along[i].second)];
  }
  if (expected != span) return std::nullopt;
  const int outermost = along[n_along - 1].second;
  if (part.geometry.ne[size_t(outermost)] % k != 0) return std::nullopt;
  part.geometry.ne[size_t(outermost)] /= k;
  part.divided_dim = outermost;
  part.geometry.offset = size_t(a0 + c0 * (span / k)) * elem_bytes;
  return part;
}

ViewGeometry geometry_of(const Tensor& t, const uint8_t* base_data) {
  return {t.ne(), t.nb(), size_t(t.data() - base_data)};
}

Tensor view_with(const Tensor& base, const ViewGeometry& g) {
  const size_t esize = base.traits().type_size;
  auto refuse = [&] {
    fail("{}: a view of shape [{}, {}, {}, {}] at byte {} cannot be made of it", base.describe(), g.ne[0], g.ne[1],
         g.ne[2], g.ne[3], g.offset);
  };
  if (base.traits().is_quantized || !base.is_contiguous() || g.offset % esize != 0) refuse();
  // The dims of more than one element by stride, innermost first: the levels of a packed parent.
  std::array<std::pair<int64_t, int>, kMaxDims> dims{};  // (element stride, dim)
  size_t m = 0;
  for (int d = 0; d < kMaxDims; ++d) {
    if (g.ne[size_t(d)] == 1) continue;
    if (g.nb[size_t(d)] % esize != 0 || g.ne[size_t(d)] < 1) refuse();
    dims[m++] = {int64_t(g.nb[size_t(d)] / esize), d};
  }
  for (size_t i = 1; i < m; ++i) {
    for (size_t j = i; j > 0 && dims[j].first < dims[j - 1].first; --j) std::swap(dims[j], dims[j - 1]);
  }
  // A packed parent from `origin` (the offset rounded down to the outermost stride): level j
  // spans stride[j + 1] / stride[j] (the last: its own ne), after a level of the innermost
  // stride where that is not 1; the view starts at the offset's coordinates in each level.
  const int64_t start = int64_t(g.offset / esize);
  const int64_t origin = m > 0 ? start - start % dims[m - 1].first : start;
  std::vector<int64_t> extents, first, kept;  // per level: the parent's extent, the view's start and extent
  std::array<int, kMaxDims> level_of{};       // view dim -> level (-1: one element)
  level_of.fill(-1);
  int64_t rest = start - origin;
  const int64_t inner = m > 0 ? dims[0].first : 1;
  if (inner != 1) extents.push_back(inner), first.push_back(rest % inner), kept.push_back(1), rest /= inner;
  for (size_t j = 0; j < m; ++j) {
    const int64_t ne = g.ne[size_t(dims[j].second)];
    const int64_t extent = j + 1 < m ? dims[j + 1].first / dims[j].first : ne;
    if (j + 1 < m && dims[j + 1].first % dims[j].first != 0) refuse();
    level_of[size_t(dims[j].second)] = int(extents.size());
    extents.push_back(extent);
    first.push_back(j + 1 < m ? rest % extent : rest);
    kept.push_back(ne);
    rest /= extent;
    if (first.back() + ne > extent) refuse();
  }
  if (extents.size() > size_t(kMaxDims)) refuse();
  int64_t span = 1;
  for (int64_t e : extents) span *= e;
  if (origin + span > base.n_elements()) refuse();
  extents.resize(size_t(kMaxDims), 1);
  first.resize(size_t(kMaxDims), 0);
  kept.resize(size_t(kMaxDims), 1);
  Tensor v = base.reshape({base.n_elements()}).slice(0, origin, span).reshape(extents);
  for (int l = 0; l < kMaxDims; ++l) v = v.slice(l, first[size_t(l)], kept[size_t(l)]);
  // View dim d is parent level level_of[d]; dims of one element take the levels left.
  std::array<bool, kMaxDims> used{};
  for (int d = 0; d < kMaxDims; ++d) {
    if (level_of[size_t(d)] >= 0) used[size_t(level_of[size_t(d)])] = true;
  }
  std::array<int, kMaxDims> perm{};
  for (int d = 0; d < kMaxDims; ++d) {
    int l = level_of[size_t(d)];
    if (l < 0) {
      for (l = 0; used[size_t(l)] || kept[size_t(l)] != 1; ++l) {
      }
      used[size_t(l)] = true;
    }
    perm[size_t(d)] = l;
  }
  return v.permute(perm);
}

}  // namespace strata
