// Registration of the subcommands; each lives in its own file (inspect.cpp, quantize.cpp, ...).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace strata::cli {

void register_commands(CLI::App& app);

// What --version prints: the version and the backends this build has.
std::string version_text();

void register_inspect(CLI::App& app);
void register_quantize(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_run(CLI::App& app);
void register_chat(CLI::App& app);
void register_perplexity(CLI::App& app);
void register_verify(CLI::App& app);
void register_compare(CLI::App& app);
void register_bench(CLI::App& app);
void register_pull(CLI::App& app);  // pull and list
void register_serve(CLI::App& app);

}  // namespace strata::cli
