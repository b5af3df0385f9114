// Reading the vocabulary test cases: NAME.gguf with NAME.gguf.inp (cases separated by
// "\n__ggml_vocab_test__\n") and NAME.gguf.out (the expected ids of each case, one line each).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace strata::test {

struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Cases from an .inp file and the ids of an .out file; throws std::runtime_error if the .out
// has fewer lines than there are cases.
inline std::vector<VocabCase> read_cases(const std::filesystem::path& inp, const std::filesystem::path& out) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  const std::string text = read_file(inp);
  std::vector<std::string> inputs;
  size_t pos = 0;
  for (size_t next; (next = text.find(sep, pos)) != std::string::npos; pos = next + sep.size())
    inputs.push_back(text.substr(pos, next - pos));
  if (pos < text.size()) inputs.push_back(text.substr(pos));

  std::vector<VocabCase> cases;
  std::istringstream lines(read_file(out));
  std::string line;
  for (const auto& input : inputs) {
    if (!std::getline(lines, line)) throw std::runtime_error(out.string() + ": fewer lines than cases");
    VocabCase c{input, {}};
    std::istringstream ids(line);
    for (int64_t id; ids >> id;) c.ids.push_back(int32_t(id));
    cases.push_back(std::move(c));
  }
  return cases;
}

// NAME.gguf.inp / NAME.gguf.out beside a vocabulary; empty if they are missing.
inline std::vector<VocabCase> read_vocab_cases(const std::filesystem::path& gguf) {
  const auto inp = std::filesystem::path(gguf.string() + ".inp");
  const auto out = std::filesystem::path(gguf.string() + ".out");
  if (!std::filesystem::exists(inp) || !std::filesystem::exists(out)) return {};
  return read_cases(inp, out);
}

// The vocab GGUFs that have cases, from the given folders (missing folders are skipped).
inline std::vector<std::filesystem::path> vocab_files(const std::vector<std::filesystem::path>& dirs) {
  std::vector<std::filesystem::path> files;
  for (const auto& dir : dirs) {
    if (dir.empty() || !std::filesystem::is_directory(dir)) continue;
    std::vector<std::filesystem::path> here;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.path().extension() == ".gguf" && std::filesystem::exists(e.path().string() + ".out")) here.push_back(e.path());
    std::sort(here.begin(), here.end());
    files.insert(files.end(), here.begin(), here.end());
  }
  return files;
}

inline std::string ids_to_string(const std::vector<int32_t>& ids) {
  std::string s;
  for (auto id : ids) {
    if (!s.empty()) s.push_back(' ');
    s.append(std::to_string(id));
  }
  return s;
}

}  // namespace strata::test
