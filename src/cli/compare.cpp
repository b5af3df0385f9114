// strata compare DIR_A DIR_B: the verify table for two --dump-tensors directories (or dumps
// written by other tools with the same names), B being the reference.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/commands.h"
#include "cli/diff_table.h"
#include "core/error.h"
#include "runtime/npy.h"

namespace strata::cli {
namespace {

namespace fs = std::filesystem;

// The .npy files under `dir` (relative paths without ".npy"), folder by folder in sorted
// order, each folder in the order of its index.txt when it has one.
std::vector<std::string> dump_names(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail("{}: not a directory", dir.string());
  std::vector<fs::path> folders{dir};
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_directory()) folders.push_back(e.path());
  }
  std::sort(folders.begin() + 1, folders.end());
  std::vector<std::string> names;
  for (const auto& folder : folders) {
    const fs::path rel = fs::relative(folder, dir);
    auto name_of = [&](const std::string& stem) { return rel == "." ? stem : (rel / stem).string(); };
    std::vector<std::string> here;
    std::ifstream index(folder / "index.txt");
    for (std::string line; std::getline(index, line);) {
      if (!line.empty() && fs::exists(folder / (line + ".npy"))) here.push_back(name_of(line));
    }
    if (here.empty()) {
      for (const auto& e : fs::directory_iterator(folder)) {
        if (e.is_regular_file() && e.path().extension() == ".npy") here.push_back(name_of(e.path().stem().string()));
      }
      std::sort(here.begin(), here.end());
    }
    names.insert(names.end(), here.begin(), here.end());
  }
  return names;
}

// Thresholds as `verify` gives them, whatever folder level was passed: by the op's name
// (the file name, not its folder), and per folder (one forward pass each), so that a pass
// carries no error budget from the passes before it.
void apply_folder_thresholds(std::vector<TensorDiff>& diffs) {
  for (size_t begin = 0; begin < diffs.size();) {
    const fs::path folder = fs::path(diffs[begin].name).parent_path();
    size_t end = begin;
    std::vector<TensorDiff> group;
    for (; end < diffs.size() && fs::path(diffs[end].name).parent_path() == folder; ++end) {
      group.push_back(diffs[end]);
      group.back().name = fs::path(diffs[end].name).filename().string();
    }
    apply_thresholds(group);
    for (size_t i = begin; i < end; ++i) {
      diffs[i].threshold = group[i - begin].threshold;
      diffs[i].pass = group[i - begin].pass;
    }
    begin = end;
  }
}

int run_compare(const std::string& dir_a, const std::string& dir_b) {
  const std::vector<std::string> names = dump_names(dir_a);
  if (names.empty()) fail("{}: no .npy files", dir_a);
  std::vector<TensorDiff> diffs;
  std::vector<std::string> missing;
  for (const auto& name : names) {
    const fs::path pb = fs::path(dir_b) / (name + ".npy");
    if (!fs::exists(pb)) {
      missing.push_back(name);
      continue;
    }
    const NpyArray a = read_npy((fs::path(dir_a) / (name + ".npy")).string());
    const NpyArray b = read_npy(pb.string());
    if (a.shape != b.shape) fail("tensor '{}': shapes differ between {} and {}", name, dir_a, dir_b);
    std::vector<int64_t> ne(a.shape.rbegin(), a.shape.rend());
    diffs.push_back(diff_values(name, ne, a.values, b.values));
  }
  apply_folder_thresholds(diffs);
  const int failures = print_diff_table(diffs);
  for (const auto& m : missing) std::printf("missing in %s: %s\n", dir_b.c_str(), m.c_str());
  if (diffs.empty()) fail("no tensor of {} is in {}", dir_a, dir_b);
  return failures > 0 ? 1 : 0;
}

}  // namespace

void register_compare(CLI::App& app) {
  auto dirs = std::make_shared<std::pair<std::string, std::string>>();
  auto* cmd = app.add_subcommand("compare", "Compare two tensor dump directories (B is the reference)");
  cmd->add_option("dir_a", dirs->first, "dump directory under test")->required();
  cmd->add_option("dir_b", dirs->second, "reference dump directory")->required();
  cmd->callback([dirs] {
    const int rc = run_compare(dirs->first, dirs->second);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace strata::cli
