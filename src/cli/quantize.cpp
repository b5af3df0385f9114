// strata quantize IN.gguf OUT.gguf TYPE [--threads N]
#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "model/quantize_file.h"

namespace strata::cli {
namespace {

struct QuantizeArgs {
  std::string input;
  std::string output;
  std::string type;
  int threads = 0;
  bool quiet = false;
  bool verbose = false;
};

void print_summary(const QuantizeReport& report, double seconds, bool verbose) {
  size_t changed = 0;
  for (const auto& t : report.tensors) {
    if (t.from != t.to) ++changed;
    if (!t.note.empty()) std::fprintf(stderr, "warning: %s: %s\n", t.name.c_str(), t.note.c_str());
    if (verbose) {
      std::fprintf(stderr, "%-40s %8s -> %s\n", t.name.c_str(), std::string(dtype_name(t.from)).c_str(),
                   std::string(dtype_name(t.to)).c_str());
    }
  }
  const double mib = 1024.0 * 1024.0;
  std::fprintf(stderr,
               "quantize: %zu tensors (%zu converted), %.2f MiB -> %.2f MiB (%.2f bits per weight) in %.2f s\n",
               report.tensors.size(), changed, double(report.input_bytes) / mib, double(report.output_bytes) / mib,
               report.n_elements ? 8.0 * double(report.output_bytes) / double(report.n_elements) : 0.0, seconds);
}

void run_quantize(const QuantizeArgs& args) {
  const auto preset = find_quant_preset(args.type);
  if (!preset) fail("unknown quantization type '{}' (expected one of: {})", args.type, quant_preset_names());
  QuantizeOptions options{*preset, args.threads > 0 ? args.threads : int(std::max(1u, std::thread::hardware_concurrency())), {}};
  ProgressBar bar("quantize", !args.quiet);
  options.progress = [&bar](uint64_t done, uint64_t total, std::string_view name) {
    bar.update(total ? double(done) / double(total) : 1.0, name);
  };
  const auto start = std::chrono::steady_clock::now();
  const QuantizeReport report = quantize_file(args.input, args.output, options);
  bar.finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!args.quiet) print_summary(report, seconds, args.verbose);
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto args = std::make_shared<QuantizeArgs>();
  auto* cmd = app.add_subcommand("quantize", "Convert a GGUF model to another weight type");
  cmd->add_option("input", args->input, "input GGUF file")->required();
  cmd->add_option("output", args->output, "output GGUF file")->required();
  cmd->add_option("type", args->type, "f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k_m q4_k_s q4_k_m q5_k_s q5_k_m q6_k")
      ->required();
  cmd->add_option("-t,--threads", args->threads, "worker threads (default: all cores)")->check(CLI::Range(1, 1024));
  cmd->add_flag("-q,--quiet", args->quiet, "print nothing but errors");
  cmd->add_flag("-v,--verbose", args->verbose, "print the type chosen for every tensor");
  cmd->callback([args] { run_quantize(*args); });
}

}  // namespace strata::cli
