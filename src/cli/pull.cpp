// strata pull URL|hf://ORG/REPO/FILE.gguf [-o NAME] [--sha256 HEX]: downloads a model into the
// cache (model_cache_dir), resuming a partial download (NAME.part) with an HTTP range request,
// with a progress bar, and checks its SHA-256 (--sha256, else the server's ETag when it is
// one, as Hugging Face's is; otherwise the sum is printed) and that it is a GGUF file.
// strata list: the models in the cache, with size, architecture and weight type.
#include <httplib.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "core/progress.h"
#include "gguf/reader.h"

namespace strata::cli {
namespace {

namespace fs = std::filesystem;

struct PullArgs {
  std::string source;
  std::string name;
  std::string sha256;
  bool quiet = false;
};

struct Url {
  std::string origin;  // scheme://host[:port]
  std::string path;    // /..., with the query
};

// http(s)://host[:port]/path, or hf://ORG/REPO/PATH (Hugging Face's main branch).
Url parse_source(const std::string& source) {
  std::string url = source;
  if (source.starts_with("hf://")) {
    const std::string rest = source.substr(5);
    const size_t org = rest.find('/');
    const size_t repo = org == std::string::npos ? org : rest.find('/', org + 1);
    if (repo == std::string::npos || repo + 1 >= rest.size()) {
      fail("'{}': expected hf://ORG/REPO/FILE.gguf", source);
    }
    url = "https://huggingface.co/" + rest.substr(0, repo) + "/resolve/main/" + rest.substr(repo + 1);
  }
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos || (url.substr(0, scheme) != "http" && url.substr(0, scheme) != "https")) {
    fail("'{}': expected an http:// or https:// URL, or hf://ORG/REPO/FILE.gguf", source);
  }
  const size_t slash = url.find('/', scheme + 3);
  if (slash == std::string::npos || slash + 1 >= url.size()) fail("'{}': the URL names no file", source);
  return {url.substr(0, slash), url.substr(slash)};
}

std::string file_name_of(const Url& url) {
  std::string name = url.path.substr(0, url.path.find('?'));
  name = name.substr(name.rfind('/') + 1);
  if (name.empty() || name == "." || name == "..")
    fail("cannot name the file of {}{}: pass -o NAME", url.origin, url.path);
  return name;
}

std::string sha256_of_file(const fs::path& path) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) fail("sha256: OpenSSL failed to start");
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf(1 << 20);
  while (in.read(buf.data(), std::streamsize(buf.size())) || in.gcount() > 0) {
    EVP_DigestUpdate(ctx.get(), buf.data(), size_t(in.gcount()));
  }
  unsigned char digest[32];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &n);
  std::string hex;
  for (unsigned int i = 0; i < n; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

// A SHA-256 in an ETag (Hugging Face: X-Linked-Etag for large files), else "".
std::string sha256_from_etag(std::string tag) {
  if (tag.starts_with("W/")) tag.erase(0, 2);
  tag.erase(std::remove(tag.begin(), tag.end(), '"'), tag.end());
  const bool hex = tag.size() == 64 && std::all_of(tag.begin(), tag.end(), [](char c) { return std::isxdigit(c); });
  if (!hex) return "";
  std::transform(tag.begin(), tag.end(), tag.begin(), [](char c) { return char(std::tolower(c)); });
  return tag;
}

struct Download {
  std::string etag_sha256;  // from the response headers
};

// Downloads url into `part`, continuing after the bytes already there.
Download fetch(const Url& url, const fs::path& part, bool quiet) {
  httplib::Client client(url.origin);
  client.set_follow_location(true);
  client.set_connection_timeout(15);
  client.set_read_timeout(60);
  const uint64_t have = fs::exists(part) ? fs::file_size(part) : 0;
  httplib::Headers headers;
  if (have > 0) headers.emplace("Range", fmt::format("bytes={}-", have));
  std::ofstream out;
  Download d;
  uint64_t offset = have;
  int status = 0;
  std::string failure;
  ProgressBar bar("download", !quiet);
  auto res = client.Get(
      url.path, headers,
      [&](const httplib::Response& r) {
        status = r.status;
        for (const char* key : {"X-Linked-Etag", "ETag"}) {
          if (d.etag_sha256.empty() && r.has_header(key)) d.etag_sha256 = sha256_from_etag(r.get_header_value(key));
        }
        if (r.status == 206) {
          out.open(part, std::ios::binary | std::ios::app);
        } else if (r.status == 200) {
          offset = 0;  // the whole file (the server ignores ranges): start again
          out.open(part, std::ios::binary | std::ios::trunc);
        } else {
          return r.status == 416;  // the range starts at the end: nothing left to fetch
        }
        if (!out) failure = fmt::format("{}: cannot write", part.string());
        return failure.empty();
      },
      [&](const char* data, size_t n) {
        out.write(data, std::streamsize(n));
        if (!out) failure = fmt::format("{}: write failed (disk full?)", part.string());
        return failure.empty();
      },
      [&](uint64_t current, uint64_t total) {
        if (total > 0) {
          bar.update(double(offset + current) / double(offset + total),
                     fmt::format("{:.1f} / {:.1f} MiB", double(offset + current) / (1 << 20),
                                 double(offset + total) / (1 << 20)));
        }
        return true;
      });
  out.close();
  if (!failure.empty()) fail("{}", failure);
  if (!res) {
    if (status == 0) {
      fail("cannot download {}{}: {} (offline, or a wrong host or port?){}", url.origin, url.path,
           httplib::to_string(res.error()),
           fs::exists(part) && fs::file_size(part) > 0 ? "; run the same pull again to resume" : "");
    }
    if (status == 200 || status == 206) {
      fail("download interrupted after {} bytes ({}); run the same pull again to resume",
           fs::exists(part) ? fs::file_size(part) : 0, httplib::to_string(res.error()));
    }
    if (status != 416) fail("{}{}: HTTP status {}", url.origin, url.path, status);
  }
  if (res && res->status != 200 && res->status != 206 && res->status != 416) {
    fail("{}{}: HTTP status {}", url.origin, url.path, res->status);
  }
  if (res) {
    // A body shorter than announced ends the transfer without an error from the library.
    const uint64_t size = fs::exists(part) ? fs::file_size(part) : 0;
    const std::string range = res->get_header_value("Content-Range");
    const size_t slash = range.rfind('/');
    if (slash != std::string::npos && range.substr(slash + 1) != "*") {
      const uint64_t total = std::stoull(range.substr(slash + 1));
      if (size < total) fail("download interrupted at {} of {} bytes; run the same pull again to resume", size, total);
    }
  }
  bar.finish();
  return d;
}

void run_pull(const PullArgs& args) {
  const Url url = parse_source(args.source);
  const std::string name = args.name.empty() ? file_name_of(url) : args.name;
  if (name.find('/') != std::string::npos || name == "." || name == "..") fail("-o {}: a file name, not a path", name);
  const fs::path dir = model_cache_dir();
  fs::create_directories(dir);
  const fs::path target = dir / name;
  const fs::path part = dir / (name + ".part");
  if (fs::exists(target))
    fail("{} is already in the cache ({}); delete it to download it again", name, target.string());
  const Download d = fetch(url, part, args.quiet);

  const std::string sum = sha256_of_file(part);
  std::string expected = args.sha256;
  std::transform(expected.begin(), expected.end(), expected.begin(), [](char c) { return char(std::tolower(c)); });
  if (expected.empty()) expected = d.etag_sha256;
  if (!expected.empty() && expected != sum) {
    fs::remove(part);
    fail("{}: SHA-256 {} does not match the expected {}; the download was deleted", name, sum, expected);
  }
  try {
    (void)gguf::File::open(part.string());
  } catch (const Error& e) {
    fs::remove(part);
    fail("{}{} is not a usable GGUF file ({}); the download was deleted", url.origin, url.path, e.what());
  }
  fs::rename(part, target);
  std::printf("%s\n", target.string().c_str());
  if (!args.quiet) {
    std::fprintf(stderr, "pulled %s: %.1f MiB, sha256 %s%s\n", name.c_str(), double(fs::file_size(target)) / (1 << 20),
                 sum.c_str(), expected.empty() ? " (not checked: no --sha256 and no ETag)" : " (checked)");
  }
}

// The weight type that holds most of the bytes of the file's matrices.
std::string main_weight_type(const gguf::File& file) {
  std::map<std::string, uint64_t> bytes;
  for (const auto& t : file.tensors())
    if (t.shape.size() >= 2) bytes[std::string(dtype_name(t.type))] += t.nbytes;
  auto it =
      std::max_element(bytes.begin(), bytes.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  return it == bytes.end() ? "-" : it->first;
}

void run_list() {
  const fs::path dir = model_cache_dir();
  std::vector<fs::path> files;
  if (fs::is_directory(dir)) {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && e.path().extension() == ".gguf") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::printf("%-48s %10s  %-10s %s\n", "NAME", "SIZE", "ARCH", "TYPE");
  for (const auto& path : files) {
    std::string arch = "?", type = "?";
    try {
      const auto file = gguf::File::open(path.string());
      if (const auto* a = file.find("general.architecture")) arch = a->as_string("general.architecture");
      type = main_weight_type(file);
    } catch (const Error&) {
      arch = "(not a valid GGUF file)";
    }
    std::printf("%-48s %8.1f MiB  %-10s %s\n", path.filename().c_str(), double(fs::file_size(path)) / (1 << 20),
                arch.c_str(), type.c_str());
  }
  std::fprintf(stderr, "%zu model%s in %s\n", files.size(), files.size() == 1 ? "" : "s", dir.c_str());
}

}  // namespace

void register_pull(CLI::App& app) {
  auto args = std::make_shared<PullArgs>();
  auto* cmd = app.add_subcommand("pull", "Download a GGUF model into the cache (resumes a partial download)");
  cmd->add_option("source", args->source, "http(s):// URL, or hf://ORG/REPO/FILE.gguf")->required();
  cmd->add_option("-o,--output", args->name, "file name in the cache (default: the URL's)");
  cmd->add_option("--sha256", args->sha256, "expected SHA-256 of the file (hex)");
  cmd->add_flag("-q,--quiet", args->quiet, "no progress bar or summary");
  cmd->callback([args] { run_pull(*args); });

  auto* list = app.add_subcommand("list", "The models in the cache: name, size, architecture, weight type");
  list->callback([] { run_list(); });
}

}  // namespace strata::cli
