// Options shared by the commands that load a model (run, chat, perplexity, verify, bench),
// and loading itself.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "model/model.h"
#include "sampling/params.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {

struct ModelOptions {
  std::string model;             // -m; empty: the default model from the cache
  std::string backend = "auto";  // --backend
  int threads = 0;               // -t; 0 = the physical cores
  int64_t ctx_size = 0;          // -c; 0 = model's context or 4096
  std::string kv_type = "f16";   // --kv-type
  bool quiet = false;            // -q
  std::string dump_dir;          // --dump-tensors (only where added)
  std::string cpu_isa;           // --cpu-isa; empty = the best path this CPU has
  bool cpu_f32_act = false;      // --cpu-f32-act
  bool cpu_q8_act = false;       // --cpu-q8-act
  int tensor_parallel = 1;       // --tensor-parallel (-tp): parts the model is split over
};

void add_model_options(CLI::App* cmd, ModelOptions& options);
void add_dump_option(CLI::App* cmd, ModelOptions& options);
void add_sampling_options(CLI::App* cmd, SamplingParams& params, bool& seed_given);
// --seed: "-1" -> false (random); a number 0..2^64-1 -> `seed`, true; else throws.
bool parse_seed(std::string_view text, uint64_t& seed);
// -n: -1 (`meaning`, e.g. "until the end of generation") or a count >= 0; else throws.
void check_n_predict(int64_t n, std::string_view meaning);

// Where models are kept: $STRATA_CACHE/models, else ~/.cache/strata/models (scripts/fetch-model
// and `strata pull` put them there).
std::filesystem::path model_cache_dir();
// The path -m names, or the default model (fetched by scripts/fetch-model into the cache).
std::string resolve_model_path(const std::string& model);

struct LoadedModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  Tokenizer tokenizer;
};
LoadedModel load_model(const ModelOptions& options);
DType kv_dtype(const ModelOptions& options);

// Informational messages on stderr unless -q.
void log_info(const ModelOptions& options, const std::string& message);

// The warning for `replaced` characters of `what` (e.g. "the prompt") that the vocabulary
// has no token for (see Tokenizer::encode); "" when none were.
std::string replaced_warning(size_t replaced, std::string_view what);
// tokenizer.encode(), with that warning on stderr unless -q.
std::vector<TokenId> encode_text(const ModelOptions& options, const Tokenizer& tokenizer, std::string_view text,
                                 bool add_special, bool parse_special, std::string_view what);

}  // namespace strata::cli
