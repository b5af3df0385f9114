// strata quantize IN.gguf OUT.gguf TYPE [--threads N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "gguf/reader.h"
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
  bool allow_requantize = false;
};

// Quantizing weights that are already quantized compounds the rounding errors (llama.cpp
// refuses it too): only with --allow-requantize. Converting to f32/f16/bf16 is exact.
void check_requantize(const QuantizeArgs& args, const QuantPreset& preset) {
  if (args.allow_requantize || !type_traits(preset.base).is_quantized) return;
  const auto file = gguf::File::open(args.input);
  for (const auto& t : file.tensors()) {
    if (!type_traits(t.type).is_quantized) continue;
    fail(
        "{} is already quantized ('{}' is {}): quantizing it again to {} adds the rounding errors of both; start from "
        "an f32/f16/bf16 file, or pass --allow-requantize",
        args.input, t.name, dtype_name(t.type), preset.name);
  }
}

void print_summary(const QuantizeReport& report, double seconds, bool verbose) {
  size_t changed = 0;
  // One line per kind of fallback: note -> {count, first tensor}, in order of first appearance.
  std::vector<std::pair<std::string, std::pair<size_t, std::string>>> notes;
  for (const auto& t : report.tensors) {
    if (t.from != t.to) ++changed;
    if (!t.note.empty()) {
      auto it = std::find_if(notes.begin(), notes.end(), [&](const auto& n) { return n.first == t.note; });
      if (it == notes.end()) notes.push_back({t.note, {1, t.name}});
      else ++it->second.first;
    }
    if (verbose) {
      std::fprintf(stderr, "%-40s %8s -> %s%s%s\n", t.name.c_str(), std::string(dtype_name(t.from)).c_str(),
                   std::string(dtype_name(t.to)).c_str(), t.note.empty() ? "" : "  # ", t.note.c_str());
    }
  }
  for (const auto& [note, seen] : notes) {
    std::fprintf(stderr, "warning: %zu tensor%s (%s%s): %s\n", seen.first, seen.first == 1 ? "" : "s",
                 seen.second.c_str(), seen.first == 1 ? "" : ", ...; -v lists them", note.c_str());
  }
  if (report.output_bytes > report.input_bytes) {
    std::fprintf(stderr, "note: the output is larger than the input%s\n",
                 notes.empty() ? "" : ": the fallback types above take more bits than the preset's");
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
  check_requantize(args, *preset);
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
  cmd->add_flag("--allow-requantize", args->allow_requantize,
                "quantize weights that are already quantized (their rounding errors add up)");
  cmd->callback([args] { run_quantize(*args); });
}

}  // namespace strata::cli
