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
}

}  // namespace strata::cli
