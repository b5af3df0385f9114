#include "cli/commands.h"
#include "core/error.h"

namespace strata::cli {

void register_quantize(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "(not built yet)");
  cmd->callback([] { fail("quantize: not built yet"); });
}

}  // namespace strata::cli
