// The `strata` executable: one subcommand per job, errors caught here and printed as
// one `error: ...` line with exit code 1.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"strata: run GGUF language models on CPUs and GPUs, and prove the numbers"};
  app.require_subcommand(1);
  strata::cli::register_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Error& e) {  // parse errors, --help, and exit codes from commands
    return app.exit(e);
  } catch (const strata::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
