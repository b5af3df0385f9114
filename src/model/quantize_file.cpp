#include "model/quantize_file.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "gguf/writer.h"

namespace strata {
namespace {

// Rows of one tensor converted per claim of a worker thread.
constexpr int64_t kRowsPerTask = 16;

// Converts `n_rows` rows of `ne0` elements from `in` (type `from`) to `out` (type `to`).
void convert_rows(const uint8_t* in, DType from, uint8_t* out, DType to, int64_t ne0, int64_t n_rows,
                  int threads) {
  const TypeTraits& src = type_traits(from);
  const TypeTraits& dst = type_traits(to);
  const size_t in_row = row_bytes(from, ne0);
  const size_t out_row = row_bytes(to, ne0);
  std::atomic<int64_t> next{0};
  auto work = [&] {
    std::vector<float> row(static_cast<size_t>(ne0));  // [ne0]
    for (int64_t r0; (r0 = next.fetch_add(kRowsPerTask)) < n_rows;) {
      for (int64_t r = r0; r < std::min(n_rows, r0 + kRowsPerTask); ++r) {
        src.dequantize(in + size_t(r) * in_row, row.data(), ne0);
        dst.quantize(row.data(), out + size_t(r) * out_row, ne0);
      }
    }
  };
  const int n_threads = int(std::clamp<int64_t>(threads, 1, std::max<int64_t>(1, n_rows / kRowsPerTask)));
  std::vector<std::thread> pool;
  for (int t = 1; t < n_threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

std::vector<uint8_t> convert_tensor(const gguf::TensorInfo& t, DType to, int threads) {
  const TypeTraits& src = type_traits(t.type);
  const TypeTraits& dst = type_traits(to);
  if (src.dequantize == nullptr) {
    fail("tensor '{}': cannot convert from {} (Strata does not compute this type)", t.name, src.name);
  }
  if (dst.quantize == nullptr) fail("tensor '{}': cannot write type {}", t.name, dst.name);
  const int64_t ne0 = t.shape[0];
  const int64_t n_rows = t.n_elements() / ne0;
  std::vector<uint8_t> out(row_bytes(to, ne0) * size_t(n_rows));
  convert_rows(t.data, t.type, out.data(), to, ne0, n_rows, threads);
  return out;
}

// Metadata of the output: the input's, with the file type and quantization version replaced.
void copy_metadata(const gguf::File& in, const QuantPreset& preset, gguf::Writer& out) {
  for (const auto& kv : in.metadata()) {
    if (kv.key == "general.file_type" || kv.key == "general.quantization_version" ||
        kv.key == "general.alignment") {
      continue;
    }
    out.set(kv.key, kv.value);
  }
  out.set("general.file_type", gguf::Value{uint32_t(preset.file_type)});
  if (type_traits(preset.base).is_quantized) {
    out.set("general.quantization_version", gguf::Value{uint32_t(2)});
  }
  if (in.alignment() != gguf::kDefaultAlignment) out.set_alignment(in.alignment());
}

}  // namespace

QuantizeReport quantize_file(const std::string& input_path, const std::string& output_path,
                             const QuantizeOptions& options) {
  const gguf::File in = gguf::File::open(input_path);
  const QuantizePlan plan(options.preset, in);
  QuantizeReport report;
  for (const auto& t : in.tensors()) {
    const auto choice = plan.choose(t);
    report.tensors.push_back({t.name, t.type, choice.type, choice.note});
    report.input_bytes += t.nbytes;
    report.n_elements += uint64_t(t.n_elements());
  }

  const std::string tmp_path = output_path + ".tmp";
  try {
    gguf::Writer out(tmp_path);
    copy_metadata(in, options.preset, out);
    for (size_t i = 0; i < in.tensors().size(); ++i) {
      const auto& t = in.tensors()[i];
      out.add_tensor(t.name, report.tensors[i].to, t.shape);
    }
    out.begin_data();
    uint64_t done = 0;
    for (size_t i = 0; i < in.tensors().size(); ++i) {
      const auto& t = in.tensors()[i];
      const DType to = report.tensors[i].to;
      if (to == t.type) {
        out.write_tensor_data({t.data, size_t(t.nbytes)});
        report.output_bytes += t.nbytes;
      } else {
        const std::vector<uint8_t> bytes = convert_tensor(t, to, options.threads);
        out.write_tensor_data(bytes);
        report.output_bytes += bytes.size();
      }
      done += t.nbytes;
      if (options.progress) options.progress(done, report.input_bytes, t.name);
    }
    out.finish();
    std::filesystem::rename(tmp_path, output_path);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp_path, ignored);
    throw;
  }
  return report;
}

}  // namespace strata
