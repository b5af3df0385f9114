// The `strata` executable: one subcommand per job. The error contract: any error, a bad
// argument included, prints one line `error: ...` on stderr and exits 1; --help and
// --version print to stdout and exit 0; a command may end with its own code (verify and
// compare: 1 when a tensor differs; chat: 130 after Ctrl-C).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/llama_flags.h"
#include "core/error.h"

namespace {

int print_error(const char* message) {
  std::fprintf(stderr, "error: %s\n", message);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"strata: run GGUF language models on CPUs and GPUs, and prove the numbers", "strata"};
  app.require_subcommand(1);
  // A flag given twice takes its last value, as in llama.cpp (repeatable flags opt out).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_version_flag("--version", strata::cli::version_text());
  strata::cli::register_commands(app);
  try {
    std::vector<std::string> commands;
    for (const CLI::App* sub : app.get_subcommands({})) commands.push_back(sub->get_name());
    std::vector<std::string> args =
        strata::cli::translate_llama_flags(std::vector<std::string>(argv + 1, argv + argc), commands);
    // CLI11 takes the arguments last first.
    std::reverse(args.begin(), args.end());
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::RuntimeError& e) {  // a command's own exit code
    return e.get_exit_code();
  } catch (const CLI::Error& e) {  // the arguments do not parse
    return print_error(e.what());
  } catch (const std::exception& e) {  // strata::Error and anything else
    return print_error(e.what());
  }
  return 0;
}
