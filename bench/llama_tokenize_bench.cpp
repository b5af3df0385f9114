// The peer of tokenizer_bench for llama.cpp: the same measurement (encode a text file N
// times in process, best and median) through llama.cpp's public API (llama.h), so both
// tokenizers are timed the same way on the same text and vocabulary. Not built by CMake:
// bench/run-tokenizer-bench compiles it against the llama.cpp build in the cache
// (scripts/build-llama-cpp).
//
//   llama_tokenize_bench -m VOCAB.gguf -f TEXT [-n RUNS] [--ids OUT]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "llama.h"

static double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

int main(int argc, char** argv) {
  std::string model_path, text_path, ids_path;
  int runs = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "-m")) model_path = argv[i + 1];
    else if (!std::strcmp(argv[i], "-f")) text_path = argv[i + 1];
    else if (!std::strcmp(argv[i], "-n")) runs = std::max(1, std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--ids")) ids_path = argv[i + 1];
  }
  if (model_path.empty() || text_path.empty()) {
    std::fprintf(stderr, "usage: llama_tokenize_bench -m VOCAB.gguf -f TEXT [-n RUNS] [--ids OUT]\n");
    return 1;
  }
  std::ifstream in(text_path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();

  llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  llama_backend_init();
  auto t0 = std::chrono::steady_clock::now();
  llama_model_params params = llama_model_default_params();
  params.vocab_only = true;
  llama_model* model = llama_model_load_from_file(model_path.c_str(), params);
  if (!model) {
    std::fprintf(stderr, "error: cannot load %s\n", model_path.c_str());
    return 1;
  }
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  std::vector<llama_token> ids(text.size() + 16);
  std::vector<double> times;
  std::vector<double> cpu_times;
  int32_t n = 0;
  for (int r = 0; r < runs; ++r) {
    const double cpu0 = cpu_seconds();
    t0 = std::chrono::steady_clock::now();
    n = llama_tokenize(vocab, text.data(), int32_t(text.size()), ids.data(), int32_t(ids.size()), false, true);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    cpu_times.push_back(cpu_seconds() - cpu0);
  }
  if (n < 0) {
    std::fprintf(stderr, "error: token buffer too small\n");
    return 1;
  }
  std::sort(times.begin(), times.end());
  std::sort(cpu_times.begin(), cpu_times.end());
  std::printf("llama_tokenize_bench: %s, text %s (%zu bytes)\n", model_path.c_str(), text_path.c_str(), text.size());
  std::printf("  load %.1f ms; encode best %.2f ms, median %.2f ms of %d runs (CPU time best %.2f ms); %d tokens\n",
              load_ms, times[0] * 1e3, times[times.size() / 2] * 1e3, runs, cpu_times[0] * 1e3, n);
  std::printf("  %.1f MB/s, %.2f M tokens/s (best)\n", double(text.size()) / 1e6 / times[0], double(n) / times[0] / 1e6);
  if (!ids_path.empty()) {
    std::FILE* out = std::fopen(ids_path.c_str(), "w");
    for (int32_t i = 0; i < n; ++i) std::fprintf(out, "%d\n", ids[size_t(i)]);
    std::fclose(out);
  }
  llama_model_free(model);
  llama_backend_free();
  return 0;
}
