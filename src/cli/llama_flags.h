// The command line as llama.cpp users type it: llama.cpp's flags that mean something here are
// rewritten to strata's (`-ngl 99` -> `--backend cuda`, `-ctk f32` -> `--kv-type f32`, ...),
// the ones with no counterpart are refused naming what to do instead, and the command word is
// checked. Runs before CLI11 parses, which would otherwise read `-ngl` as `-n gl` and `-hf`
// as `-h -f`.
#pragma once

#include <string>
#include <vector>

namespace strata::cli {

// `args`: argv[1..]. `commands`: the subcommand names. Returns the arguments to parse.
// Throws strata::Error for a missing or unknown command or a refused llama.cpp flag.
std::vector<std::string> translate_llama_flags(std::vector<std::string> args, const std::vector<std::string>& commands);

}  // namespace strata::cli
