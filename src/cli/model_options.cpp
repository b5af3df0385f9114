#include "cli/model_options.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "core/error.h"
#include "core/progress.h"
#include "runtime/backends.h"

namespace strata::cli {

void add_model_options(CLI::App* cmd, ModelOptions& o) {
  cmd->add_option("-m,--model", o.model, "GGUF model (default: SmolLM2-135M-Instruct from scripts/fetch-model)");
  cmd->add_option("--backend", o.backend, "cpu, cpu_ref, cpu_ref64 (the reference accumulating in f64), cuda or auto")
      ->capture_default_str();
  cmd->add_option("-t,--threads", o.threads, "CPU threads (default: the physical cores)")->check(CLI::Range(1, 1024));
  cmd->add_option("-c,--ctx-size", o.ctx_size, "context size; 0 = the model's, at most 4096 (the default)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 24));
  cmd->add_option("--kv-type", o.kv_type, "KV cache type: f16 or f32")->capture_default_str();
  cmd->add_flag("-q,--quiet", o.quiet, "no logs on stderr");
  cmd->add_option("--cpu-isa", o.cpu_isa, "cpu backend: force an ISA path (portable, avx2, avx512, avx512-vnni)");
  cmd->add_flag("--cpu-f32-act", o.cpu_f32_act, "cpu backend: f32 activations in matmul instead of 8-bit ones");
  cmd->add_flag("--cpu-q8-act", o.cpu_q8_act,
                "cpu backend: one 8-bit term per activation in matmul instead of two (faster, less exact)");
  cmd->add_option("--tensor-parallel", o.tensor_parallel,
                  "split the model over N devices by heads and columns (-tp N): cuda: N GPUs; cpu, cpu_ref: N "
                  "in-process parts (the CPU simulation)")
      ->capture_default_str();
}

void add_dump_option(CLI::App* cmd, ModelOptions& o) {
  cmd->add_option("--dump-tensors", o.dump_dir, "write every named intermediate as DIR/pass-NNN/<name>.npy");
}

void add_sampling_options(CLI::App* cmd, SamplingParams& p, bool& seed_given) {
  cmd->add_option("--temp", p.temperature, "temperature; 0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", p.top_k, "top-k; 0 = off")->capture_default_str();
  cmd->add_option("--top-p", p.top_p, "top-p; 1 = off")->capture_default_str();
  cmd->add_option("--min-p", p.min_p, "min-p; 0 = off")->capture_default_str();
  cmd->add_option("--repeat-penalty", p.repeat_penalty, "repeat penalty; 1 = off")->capture_default_str();
  cmd->add_option("--repeat-last-n", p.penalty_last_n, "tokens of history penalised; -1 = all, 0 = off")
      ->capture_default_str();
  cmd->add_option("--frequency-penalty", p.frequency_penalty, "frequency penalty; 0 = off")->capture_default_str();
  cmd->add_option("--presence-penalty", p.presence_penalty, "presence penalty; 0 = off")->capture_default_str();
  cmd->add_option_function<std::string>(
      "-s,--seed", [&p, &seed_given](const std::string& text) { seed_given = parse_seed(text, p.seed); },
      "random seed; -1 = random (the default); the seed used is logged");
}

bool parse_seed(std::string_view text, uint64_t& seed) {
  if (text == "-1") return false;
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    fail("--seed must be -1 (random) or an integer from 0 to {}, got '{}'", std::numeric_limits<uint64_t>::max(), text);
  }
  seed = value;
  return true;
}

void check_n_predict(int64_t n, std::string_view meaning) {
  if (n < -1) fail("-n must be -1 ({}) or a number of tokens >= 0, got {}", meaning, n);
}

std::filesystem::path model_cache_dir() {
  const char* cache = std::getenv("STRATA_CACHE");
  const char* home = std::getenv("HOME");
  const std::filesystem::path root =
      cache != nullptr ? cache : std::filesystem::path(home ? home : ".") / ".cache/strata";
  return root / "models";
}

std::string resolve_model_path(const std::string& model) {
  if (!model.empty()) return model;
  const auto path = model_cache_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) {
    fail("no model given (-m) and the default model is not at {}: run scripts/fetch-model", path.string());
  }
  return path.string();
}

DType kv_dtype(const ModelOptions& o) {
  if (o.kv_type == "f16") return DType::F16;
  if (o.kv_type == "f32") return DType::F32;
  fail("--kv-type must be f16 or f32, got '{}'", o.kv_type);
}

void log_info(const ModelOptions& o, const std::string& message) {
  if (!o.quiet) std::fprintf(stderr, "%s\n", message.c_str());
}

std::string replaced_warning(size_t replaced, std::string_view what) {
  if (replaced == 0) return "";
  return fmt::format(
      "warning: {} character{} of {} {} no token in this vocabulary (invalid UTF-8, or bytes the model never saw): "
      "encoded as U+FFFD or the unknown token",
      replaced, replaced == 1 ? "" : "s", what, replaced == 1 ? "has" : "have");
}

std::vector<TokenId> encode_text(const ModelOptions& o, const Tokenizer& tokenizer, std::string_view text,
                                 bool add_special, bool parse_special, std::string_view what) {
  size_t replaced = 0;
  std::vector<TokenId> ids = tokenizer.encode(text, add_special, parse_special, &replaced);
  if (replaced > 0) log_info(o, replaced_warning(replaced, what));
  return ids;
}

LoadedModel load_model(const ModelOptions& o) {
  const std::string path = resolve_model_path(o.model);
  auto backend =
      make_backend(o.backend, o.threads, CpuOptions{o.cpu_isa, o.cpu_f32_act, o.cpu_q8_act}, o.tensor_parallel);
  ProgressBar bar("loading", !o.quiet);
  auto model = Model::load(path, *backend, [&bar](double fraction) { bar.update(fraction); });
  bar.finish();
  auto tokenizer = Tokenizer::from_gguf(model->file());
  LoadedModel m{std::move(backend), std::move(model), std::move(tokenizer)};
  for (const auto& w : m.tokenizer.warnings()) log_info(o, "warning: " + path + ": " + w);
  const ModelConfig& c = m.model->config();
  log_info(o, fmt::format("model: {} ({}, {} layers, n_embd {}, {} heads / {} KV, vocab {}) on backend {}", path,
                          c.arch, c.n_layer, c.n_embd, c.n_head, c.n_head_kv, c.n_vocab, describe_backend(*m.backend)));
  if (const std::string split = describe_split(*m.backend); !split.empty()) log_info(o, split);
  const PreparedWeights& prepared = m.model->weights().prepared;
  if (prepared.matrices > 0) {
    log_info(o, fmt::format("weights: {} {} copied into the layout of the backend's matmul kernels, {:.1f} MiB "
                            "(their pages of the file released)",
                            prepared.matrices, prepared.matrices == 1 ? "matrix" : "matrices",
                            double(prepared.bytes) / (1 << 20)));
  }
  return m;
}

}  // namespace strata::cli
