#include "cli/commands.h"

namespace strata::cli {

void register_commands(CLI::App& app) {
  register_inspect(app);
  register_quantize(app);
  register_tokenize(app);
  register_run(app);
  register_chat(app);
  register_perplexity(app);
  register_verify(app);
  register_compare(app);
  register_bench(app);
  register_pull(app);
  register_serve(app);
}

std::string version_text() {
#ifdef STRATA_HAVE_CUDA
  constexpr const char* backends = "cpu, cpu_ref, cpu_ref64, cuda";
#else
  constexpr const char* backends = "cpu, cpu_ref, cpu_ref64 (built without CUDA)";
#endif
#if defined(STRATA_HAVE_NCCL)
  constexpr const char* split = "; --tensor-parallel over GPUs (NCCL) or in-process";
#elif defined(STRATA_HAVE_CUDA)
  constexpr const char* split = "; --tensor-parallel in-process only (built without NCCL)";
#else
  constexpr const char* split = "; --tensor-parallel in-process";
#endif
  return std::string("strata ") + STRATA_VERSION + " (backends: " + backends + split + ")";
}

}  // namespace strata::cli
