// strata inspect FILE [--json]: the GGUF version, metadata, tensor table and totals of a file.
// Only the header is read (the file is mmapped), so a 7 GB model inspects in milliseconds.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "gguf/reader.h"

namespace strata::cli {
namespace {

using gguf::Array;
using gguf::Value;
using gguf::ValueType;

constexpr size_t kMaxStringChars = 60;  // longer strings are cut in the text output
constexpr size_t kMaxArrayItems = 8;    // longer arrays show their first kShownItems
constexpr size_t kShownItems = 5;

struct InspectArgs {
  std::string path;
  bool json = false;
};

struct Totals {
  uint64_t parameters = 0;
  uint64_t bytes = 0;
  std::map<std::string, size_t> tensors_per_type;
  double bits_per_weight() const { return parameters ? 8.0 * double(bytes) / double(parameters) : 0.0; }
};

Totals totals_of(const gguf::File& f) {
  Totals t;
  for (const auto& info : f.tensors()) {
    t.parameters += uint64_t(info.n_elements());
    t.bytes += info.nbytes;
    ++t.tensors_per_type[std::string(dtype_name(info.type))];
  }
  return t;
}

// ---- text output ----

// A key or tensor name with control characters escaped, so that each entry stays on its line.
std::string escaped(const std::string& s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += ch;
    }
  }
  return out;
}

// A string in double quotes with escapes, cut after kMaxStringChars characters.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  size_t chars = 0, i = 0;
  for (; i < s.size() && chars < kMaxStringChars; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\', out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += char(c);
    }
    if ((c & 0xC0) != 0x80) ++chars;  // count characters, not UTF-8 continuation bytes
  }
  while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) out += s[i++];  // finish the character
  out += '"';
  if (i < s.size()) out += fmt::format("... ({} bytes)", s.size());
  return out;
}

std::string format_value(const Value& v, bool top);

std::string format_array(const Array& a, bool top) {
  std::string out = top ? fmt::format("[{}; {}]", gguf::value_type_name(a.elem_type), a.items.size()) : "[";
  const size_t shown = a.items.size() > kMaxArrayItems ? kShownItems : a.items.size();
  for (size_t i = 0; i < shown; ++i) {
    out += (i == 0 ? (top ? " " : "") : ", ") + format_value(a.items[i], false);
  }
  if (shown < a.items.size()) out += shown ? ", ..." : " ...";
  if (!top) out += "]";
  return out;
}

std::string format_value(const Value& v, bool top) {
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return quoted(x);
        } else if constexpr (std::is_same_v<T, Array>) {
          return format_array(x, top);
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
          return fmt::format("{}", int(x));
        } else {
          return fmt::format("{}", x);
        }
      },
      v.data);
}

std::string format_shape(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::string human_bytes(uint64_t n) {
  if (n >= (uint64_t(1) << 30)) return fmt::format("{:.2f} GiB", double(n) / double(uint64_t(1) << 30));
  if (n >= (uint64_t(1) << 20)) return fmt::format("{:.2f} MiB", double(n) / double(uint64_t(1) << 20));
  return fmt::format("{:.2f} KiB", double(n) / 1024.0);
}

void print_text(const gguf::File& f) {
  std::string out = fmt::format("{}: GGUF version {}, alignment {}, {} bytes, data section at offset {}\n\n", f.name(),
                                f.version(), f.alignment(), f.file_size(), f.data_offset());
  size_t key_width = 0;
  for (const auto& kv : f.metadata()) key_width = std::max(key_width, std::min<size_t>(kv.key.size(), 48));
  out += fmt::format("metadata ({} keys):\n", f.metadata().size());
  for (const auto& kv : f.metadata()) {
    out += fmt::format("  {:<{}}  {:<4}  {}\n", escaped(kv.key), key_width, gguf::value_type_name(kv.value.type()),
                       format_value(kv.value, true));
  }

  size_t name_width = 4, shape_width = 5;
  for (const auto& t : f.tensors()) {
    name_width = std::max(name_width, std::min<size_t>(t.name.size(), 64));
    shape_width = std::max(shape_width, format_shape(t.shape).size());
  }
  out += fmt::format("\ntensors ({}):\n", f.tensors().size());
  if (!f.tensors().empty()) {
    out += fmt::format("  {:<{}}  {:<7}  {:<{}}  {:>12}\n", "name", name_width, "type", "shape", shape_width, "bytes");
  }
  for (const auto& t : f.tensors()) {
    out += fmt::format("  {:<{}}  {:<7}  {:<{}}  {:>12}\n", escaped(t.name), name_width, dtype_name(t.type),
                       format_shape(t.shape), shape_width, t.nbytes);
  }

  const Totals totals = totals_of(f);
  std::string per_type;
  for (const auto& [type, n] : totals.tensors_per_type) per_type += fmt::format("{}{} {}", per_type.empty() ? "" : ", ", n, type);
  const std::string size =
      totals.bytes < 1024 ? fmt::format("{} bytes", totals.bytes) : fmt::format("{} ({} bytes)", human_bytes(totals.bytes), totals.bytes);
  out += fmt::format("\ntotals: {} tensors ({}), {} parameters, {}, {:.2f} bits per weight\n", f.tensors().size(),
                     per_type.empty() ? "none" : per_type, totals.parameters, size, totals.bits_per_weight());
  std::fwrite(out.data(), 1, out.size(), stdout);
}

// ---- JSON output ----

nlohmann::ordered_json to_json(const Value& v) {
  return std::visit(
      [](const auto& x) -> nlohmann::ordered_json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Array>) {
          auto arr = nlohmann::ordered_json::array();
          for (const Value& item : x.items) arr.push_back(to_json(item));
          return arr;
        } else {
          return x;
        }
      },
      v.data);
}

void print_json(const gguf::File& f) {
  nlohmann::ordered_json j;
  j["file"] = f.name();
  j["version"] = f.version();
  j["alignment"] = f.alignment();
  j["data_offset"] = f.data_offset();
  j["file_size"] = f.file_size();
  auto& metadata = j["metadata"] = nlohmann::ordered_json::object();
  for (const auto& kv : f.metadata()) metadata[kv.key] = to_json(kv.value);
  auto& tensors = j["tensors"] = nlohmann::ordered_json::array();
  for (const auto& t : f.tensors()) {
    // offset: from the start of the data section, as the file stores it.
    tensors.push_back(
        {{"name", t.name}, {"type", dtype_name(t.type)}, {"shape", t.shape}, {"offset", t.offset}, {"bytes", t.nbytes}});
  }
  const Totals totals = totals_of(f);
  j["totals"] = {{"tensors", f.tensors().size()},
                 {"parameters", totals.parameters},
                 {"bytes", totals.bytes},
                 {"bits_per_weight", totals.bits_per_weight()}};
  // Strings that are not UTF-8 (possible in token lists) are written with U+FFFD.
  const std::string out = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
}

void run_inspect(const InspectArgs& args) {
  const gguf::File f = gguf::File::open(args.path);
  if (args.json) {
    print_json(f);
  } else {
    print_text(f);
  }
  if (std::fflush(stdout) != 0) fail("inspect: cannot write the output");
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand("inspect", "Print a GGUF file's version, metadata, tensor table and totals");
  cmd->add_option("file", args->path, "the GGUF file")->required();
  cmd->add_flag("--json", args->json, "one JSON document: version, metadata (arrays in full), tensors, totals");
  cmd->callback([args] { run_inspect(*args); });
}

}  // namespace strata::cli
