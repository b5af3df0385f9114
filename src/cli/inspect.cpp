#include "cli/commands.h"
#include "core/error.h"

namespace strata::cli {

void register_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "(not built yet)");
  cmd->callback([] { fail("inspect: not built yet"); });
}

}  // namespace strata::cli
