#include "runtime/tensor_dump.h"

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "core/error.h"
#include "runtime/npy.h"

namespace strata {
namespace {

struct Dumper {
  Backend* backend;
  std::filesystem::path root;
  int pass = -1;
  std::ofstream index;

  void start_pass() {
    ++pass;
    const auto dir = root / fmt::format("pass-{:03d}", pass);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) fail("--dump-tensors: cannot create {}: {}", dir.string(), ec.message());
    index = std::ofstream(dir / "index.txt");
    if (!index) fail("--dump-tensors: cannot write {}", (dir / "index.txt").string());
  }

  void operator()(std::string_view name, const Tensor& value) {
    if (name == "inp_embd" || pass < 0) start_pass();
    const auto path = root / fmt::format("pass-{:03d}", pass) / (std::string(name) + ".npy");
    write_npy(path.string(), backend->to_host_f32(value), 2);  // [n_tokens, features]
    index << name << '\n';
  }
};

}  // namespace

Tap dump_tap(Backend& backend, const std::string& dir) {
  auto dumper = std::make_shared<Dumper>();
  dumper->backend = &backend;
  dumper->root = dir;
  return [dumper](std::string_view name, const Tensor& value) { (*dumper)(name, value); };
}

}  // namespace strata
