// The reader on malformed input: the committed hand-made set (tests/data/gguf/malformed,
// written by tests/gguf/make_malformed.py), every truncation of valid files, and single-byte
// corruptions of every header byte. Each must give a strata::Error with a useful message,
// never a crash, another exception type or a read out of bounds (run under ASan in CI).
#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "gguf/gguf_test_util.h"
#include "gguf/reader.h"
#include "gguf/writer.h"

namespace strata::gguf {
namespace {

const std::string kMalformedDir = std::string(STRATA_TEST_DATA) + "/gguf/malformed";

struct Expectation {
  std::string file;
  std::string substring;
};

std::vector<Expectation> read_manifest() {
  std::ifstream in(kMalformedDir + "/expected.txt");
  std::vector<Expectation> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t tab = line.find('\t');
    if (tab == std::string::npos) continue;
    out.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  return out;
}

// Parses a heap copy of exactly these bytes (so ASan sees any read past the end).
std::string parse_error(std::span<const uint8_t> bytes, const std::string& name) {
  std::vector<uint8_t> copy(bytes.begin(), bytes.end());
  try {
    File::parse(copy, name);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(GgufMalformed, EveryFileInTheManifestFailsWithItsMessage) {
  const auto cases = read_manifest();
  ASSERT_GE(cases.size(), 50u) << "manifest missing or short: " << kMalformedDir;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const std::string path = kMalformedDir + "/" + c.file;
    std::string message;
    try {
      File::open(path);
    } catch (const Error& e) {
      message = e.what();
    }
    ASSERT_FALSE(message.empty()) << "no error for " << c.file;
    EXPECT_NE(message.find(c.substring), std::string::npos) << "message: " << message << "\nexpected: " << c.substring;
    EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << "the message must start with the file name: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
    // The same from a heap copy of exactly the file's bytes.
    EXPECT_EQ(parse_error(test::read_bytes(path), path), message);
  }
}

TEST(GgufMalformed, ManifestCoversEveryFileInTheDirectory) {
  const auto cases = read_manifest();
  for (const auto& c : cases) {
    EXPECT_TRUE(std::ifstream(kMalformedDir + "/" + c.file).good()) << c.file;
  }
}

// A small valid file with every kind of field: scalars, strings, nested arrays, tensors.
std::vector<uint8_t> valid_file(uint64_t alignment) {
  test::TempFile tmp("valid.gguf");
  const auto a = test::random_bytes(4 * 6, 1), b = test::random_bytes(34 * 2, 2), c = test::random_bytes(2 * 32, 3);
  write_file(tmp.path,
             {{"general.architecture", Value{std::string("llama")}},
              {"u8", Value{uint8_t(1)}},
              {"f64", Value{2.5}},
              {"flag", Value{true}},
              {"tokens", make_array(ValueType::STRING, {Value{std::string("a")}, Value{std::string("\u00e9")}})},
              {"nested", make_array(ValueType::ARRAY, {make_array(ValueType::INT16, {Value{int16_t(3)}})})}},
             {{"a", DType::F32, {3, 2}, a}, {"b", DType::Q8_0, {32, 2}, b}, {"c", DType::F16, {32}, c}}, alignment);
  return test::read_bytes(tmp.path);
}

// Where the last tensor's data ends: any shorter prefix is invalid, any longer one valid.
uint64_t data_end(std::span<const uint8_t> bytes) {
  const File f = File::parse(bytes, "valid");
  uint64_t end = f.data_offset();
  for (const auto& t : f.tensors()) end = std::max(end, f.data_offset() + t.offset + t.nbytes);
  return end;
}

void check_every_truncation(const std::vector<uint8_t>& bytes, const std::string& name) {
  const uint64_t end = data_end(bytes);
  ASSERT_LE(end, bytes.size());
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::string message = parse_error(std::span(bytes).first(n), name);
    if (n < end) {
      ASSERT_FALSE(message.empty()) << "prefix of " << n << " bytes accepted";
      const bool says_end = message.find("end of file") != std::string::npos ||
                            message.find("bytes left") != std::string::npos;
      EXPECT_TRUE(says_end) << "prefix of " << n << " bytes: " << message;
      EXPECT_EQ(message.rfind(name + ": ", 0), 0u) << message;
    } else {
      EXPECT_EQ(message, "") << "prefix of " << n << " bytes (only padding cut) rejected";
    }
  }
}

TEST(GgufMalformed, TruncatedAtEveryByte) {
  check_every_truncation(valid_file(32), "ours.gguf");
  check_every_truncation(valid_file(128), "ours-aligned.gguf");
}

TEST(GgufMalformed, TruncatedAtEveryByteOfAFileFromThePythonPackage) {
  const auto bytes = test::read_bytes(std::string(STRATA_TEST_DATA) + "/gguf/pygguf/tiny.gguf");
  ASSERT_FALSE(bytes.empty());
  check_every_truncation(bytes, "tiny.gguf");
}

// Every header byte set to a few values: the reader must accept or throw strata::Error.
TEST(GgufMalformed, CorruptedHeaderBytesNeverCrash) {
  const auto bytes = valid_file(32);
  const uint64_t header = File::parse(bytes, "v").data_offset();
  int rejected = 0, accepted = 0;
  for (size_t i = 0; i < header; ++i) {
    for (uint8_t v : {uint8_t(0x00), uint8_t(0xff), uint8_t(0x80), uint8_t(0x7f), uint8_t(bytes[i] + 1)}) {
      auto copy = bytes;
      copy[i] = v;
      try {
        File f = File::parse(copy, "corrupt.gguf");
        for (const auto& t : f.tensors()) ASSERT_LE(t.data + t.nbytes, copy.data() + copy.size());
        ++accepted;
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(accepted, 0);  // e.g. a changed value byte
}

}  // namespace
}  // namespace strata::gguf
