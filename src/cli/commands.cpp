#include "cli/commands.h"

namespace strata::cli {

void register_commands(CLI::App& app) {
  register_inspect(app);
  register_quantize(app);
}

}  // namespace strata::cli
