// Interoperability with independent implementations: our reader on a file the `gguf` Python
// package's GGUFWriter made (committed, see tests/gguf/make_pygguf.py); its GGUFReader on a
// file our writer made (tests/gguf/read_with_gguf.py, run at test time); and llama.cpp's
// gguf reader (`llama-gguf`, when scripts/build-llama-cpp has built it) on a file of ours.
#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/half.h"
#include "gguf/gguf_test_util.h"
#include "gguf/reader.h"
#include "gguf/writer.h"

namespace strata::gguf {
namespace {

const std::string kTestSource = std::string(STRATA_TEST_DATA) + "/../gguf";

// Expectations are the values tests/gguf/make_pygguf.py passes to GGUFWriter.
TEST(GgufPython, ReadsAFileWrittenByGGUFWriter) {
  const File f = File::open(std::string(STRATA_TEST_DATA) + "/gguf/pygguf/tiny.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.get("general.architecture").as_string("arch"), "llama");
  EXPECT_EQ(f.get("general.name").as_string("name"), "tiny test");
  EXPECT_TRUE(f.get("test.u8") == Value{uint8_t(200)});
  EXPECT_TRUE(f.get("test.i8") == Value{int8_t(-100)});
  EXPECT_TRUE(f.get("test.u16") == Value{uint16_t(60000)});
  EXPECT_TRUE(f.get("test.i16") == Value{int16_t(-30000)});
  EXPECT_TRUE(f.get("test.u32") == Value{uint32_t(4000000000u)});
  EXPECT_TRUE(f.get("test.i32") == Value{int32_t(-2000000000)});
  EXPECT_TRUE(f.get("test.f32") == Value{0.15625f});
  EXPECT_TRUE(f.get("test.bool") == Value{true});
  EXPECT_TRUE(f.get("test.u64") == Value{(uint64_t(1) << 63) + 5});
  EXPECT_TRUE(f.get("test.i64") == Value{-(int64_t(1) << 62)});
  EXPECT_TRUE(f.get("test.f64") == Value{3.141592653589793});
  EXPECT_EQ(f.get("test.str").as_string("str"), "h\u00e9llo \U0001F600");
  EXPECT_TRUE(f.get("test.tokens") == make_array(ValueType::STRING, {Value{std::string("<s>")},
                                                                     Value{std::string("</s>")},
                                                                     Value{std::string("\u2581hello")}}));
  EXPECT_TRUE(f.get("test.scores") == make_array(ValueType::FLOAT32, {Value{0.0f}, Value{-1.5f}, Value{2.25f}}));
  EXPECT_TRUE(f.get("test.nested") ==
              make_array(ValueType::ARRAY, {make_array(ValueType::INT32, {Value{1}, Value{2}}),
                                            make_array(ValueType::INT32, {Value{3}})}));

  ASSERT_EQ(f.tensors().size(), 4u);
  const TensorInfo* embd = f.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->type, DType::F32);
  EXPECT_EQ(embd->shape, (std::vector<int64_t>{4, 3}));
  for (int i = 0; i < 12; ++i) {
    float v;
    std::memcpy(&v, embd->data + 4 * i, 4);
    EXPECT_EQ(v, 0.5f * float(i));
  }
  const TensorInfo* q = f.find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, DType::F16);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{8, 2}));
  uint16_t h;
  std::memcpy(&h, q->data + 2 * 3, 2);
  EXPECT_EQ(f16_to_f32(h), -5.0f);
  const TensorInfo* down = f.find_tensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->type, DType::Q8_0);
  EXPECT_EQ(down->shape, (std::vector<int64_t>{32, 2}));
  ASSERT_EQ(down->nbytes, 68u);
  for (int i = 0; i < 68; ++i) EXPECT_EQ(down->data[i], uint8_t(i));
  const TensorInfo* norm = f.find_tensor("output_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->shape, (std::vector<int64_t>{5}));
  EXPECT_EQ(norm->nbytes, 20u);
}

bool python_gguf_available() { return std::system("python3 -c 'import gguf' >/dev/null 2>&1") == 0; }

std::string to_lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string hex(std::span<const uint8_t> bytes) {
  static const char* digits = "0123456789abcdef";
  std::string s(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    s[2 * i] = digits[bytes[i] >> 4];
    s[2 * i + 1] = digits[bytes[i] & 15];
  }
  return s;
}

TEST(GgufPython, GGUFReaderReadsOurWriter) {
  if (!python_gguf_available()) GTEST_SKIP() << "python3 with the gguf package (pip install gguf) is needed";
  test::TempFile file("ours_for_python.gguf"), json_out("ours_for_python.json");
  const std::vector<KeyValue> kvs = {
      {"general.architecture", Value{std::string("llama")}},
      {"t.u8", Value{uint8_t(7)}},
      {"t.i16", Value{int16_t(-7)}},
      {"t.u32", Value{uint32_t(123456)}},
      {"t.i32", Value{int32_t(-123456)}},
      {"t.f32", Value{0.25f}},
      {"t.bool", Value{false}},
      {"t.u64", Value{uint64_t(1) << 40}},
      {"t.i64", Value{int64_t(-5)}},
      {"t.f64", Value{-1.5}},
      {"t.str", Value{std::string("\u65e5\u672c \U0001F600")}},
      {"t.tokens", make_array(ValueType::STRING, {Value{std::string("a")}, Value{std::string("\u00e9")}})},
      {"t.ints", make_array(ValueType::INT32, {Value{1}, Value{-2}, Value{3}})},
      {"t.nested", make_array(ValueType::ARRAY, {make_array(ValueType::UINT8, {Value{uint8_t(1)}})})},
  };
  const std::vector<std::pair<DType, std::vector<int64_t>>> specs = {
      {DType::F32, {5, 3}}, {DType::F16, {7}},        {DType::Q4_0, {64, 2}}, {DType::Q8_0, {32, 1, 3}},
      {DType::Q6_K, {256}}, {DType::BF16, {2, 2, 2, 2}}, {DType::Q4_K, {512, 2}}};
  std::vector<std::vector<uint8_t>> data;
  std::vector<TensorData> tensors;
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& [type, shape] = specs[i];
    int64_t rows = 1;
    for (size_t d = 1; d < shape.size(); ++d) rows *= shape[d];
    data.push_back(test::random_bytes(row_bytes(type, shape[0]) * size_t(rows), uint32_t(100 + i)));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    tensors.push_back({fmt::format("t{}.weight", i), specs[i].first, specs[i].second, data[i]});
  }
  write_file(file.path, kvs, tensors, 64);

  const std::string cmd =
      "python3 '" + kTestSource + "/read_with_gguf.py' '" + file.path + "' > '" + json_out.path + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto j = nlohmann::json::parse(std::ifstream(json_out.path));

  EXPECT_EQ(j["alignment"], 64);
  const auto& meta = j["metadata"];
  EXPECT_EQ(meta.size(), kvs.size() + 1);  // general.alignment added by write_file
  EXPECT_EQ(meta["general.alignment"]["types"][0], "UINT32");
  EXPECT_EQ(meta["general.alignment"]["value"], 64);
  EXPECT_EQ(meta["general.architecture"]["value"], "llama");
  EXPECT_EQ(meta["t.u8"]["types"][0], "UINT8");
  EXPECT_EQ(meta["t.u8"]["value"], 7);
  EXPECT_EQ(meta["t.i16"]["value"], -7);
  EXPECT_EQ(meta["t.u32"]["value"], 123456);
  EXPECT_EQ(meta["t.i32"]["value"], -123456);
  EXPECT_EQ(meta["t.f32"]["value"], 0.25);
  EXPECT_EQ(meta["t.bool"]["types"][0], "BOOL");
  EXPECT_EQ(meta["t.bool"]["value"], false);
  EXPECT_EQ(meta["t.u64"]["value"], uint64_t(1) << 40);
  EXPECT_EQ(meta["t.i64"]["types"][0], "INT64");
  EXPECT_EQ(meta["t.i64"]["value"], -5);
  EXPECT_EQ(meta["t.f64"]["value"], -1.5);
  EXPECT_EQ(meta["t.str"]["value"], "\u65e5\u672c \U0001F600");
  EXPECT_EQ(meta["t.tokens"]["value"], nlohmann::json::array({"a", "\u00e9"}));
  EXPECT_EQ(meta["t.ints"]["value"], nlohmann::json::array({1, -2, 3}));
  EXPECT_EQ(meta["t.nested"]["types"], nlohmann::json::array({"ARRAY", "ARRAY", "UINT8"}));

  const File ours = File::open(file.path);
  ASSERT_EQ(j["tensors"].size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& t = j["tensors"][i];
    SCOPED_TRACE(tensors[i].name);
    EXPECT_EQ(t["name"], tensors[i].name);
    EXPECT_EQ(to_lower(t["type"]), to_lower(std::string(dtype_name(specs[i].first))));
    EXPECT_EQ(t["shape"].get<std::vector<int64_t>>(), specs[i].second);
    EXPECT_EQ(t["nbytes"], data[i].size());
    EXPECT_EQ(t["offset"], ours.data_offset() + ours.tensors()[i].offset);
    EXPECT_EQ(t["data_hex"], hex(data[i]));
  }
}

// Runs a shell command; returns its exit status and stdout+stderr.
std::pair<int, std::string> run_command(const std::string& cmd) {
  std::FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  return {::pclose(p), out};
}

TEST(GgufLlamaCpp, LlamaGgufReadsOurWriter) {
  const std::string root = std::string(STRATA_TEST_DATA) + "/../..";
  auto [rc, bin] = run_command("'" + root + "/scripts/build-llama-cpp' --path");
  while (!bin.empty() && (bin.back() == '\n' || bin.back() == ' ')) bin.pop_back();
  if (rc != 0 || bin.rfind('\n') != std::string::npos) {
    GTEST_SKIP() << "llama.cpp tools not built (scripts/build-llama-cpp)";
  }
  test::TempFile file("ours_for_llama.gguf");
  // No nested arrays: valid GGUF, but llama.cpp's reader does not support them.
  const std::vector<KeyValue> kvs = {
      {"general.architecture", Value{std::string("llama")}},
      {"t.u8", Value{uint8_t(3)}},
      {"t.bool", Value{true}},
      {"t.f64", Value{1.5}},
      {"t.strs", make_array(ValueType::STRING, {Value{std::string("a")}, Value{std::string("\u00e9")}})},
      {"t.empty", make_array(ValueType::UINT32, {})},
  };
  const std::vector<std::pair<DType, std::vector<int64_t>>> specs = {
      {DType::F32, {5, 3}}, {DType::Q4_0, {64, 2}}, {DType::Q6_K, {256, 2, 2}}, {DType::BF16, {3}}, {DType::IQ4_XS, {256}}};
  std::vector<std::vector<uint8_t>> data;
  std::vector<TensorData> tensors;
  for (size_t i = 0; i < specs.size(); ++i) {
    int64_t rows = 1;
    for (size_t d = 1; d < specs[i].second.size(); ++d) rows *= specs[i].second[d];
    data.push_back(test::random_bytes(row_bytes(specs[i].first, specs[i].second[0]) * size_t(rows), uint32_t(i)));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    tensors.push_back({fmt::format("tensor{}", i), specs[i].first, specs[i].second, data[i]});
  }
  write_file(file.path, kvs, tensors, 64);
  const File ours = File::open(file.path);

  const auto [status, out] = run_command("'" + bin + "/llama-gguf' '" + file.path + "' r n");
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("alignment:   64"), std::string::npos) << out;
  EXPECT_NE(out.find(fmt::format("data offset: {}", ours.data_offset())), std::string::npos) << out;
  EXPECT_NE(out.find(fmt::format("n_kv: {}", kvs.size() + 1)), std::string::npos) << out;
  for (const auto& t : ours.tensors()) {
    const std::string line = fmt::format("name = {}, size = {}, offset = {}", t.name, t.nbytes, t.offset);
    EXPECT_NE(out.find(line), std::string::npos) << line << "\n" << out;
  }
}

}  // namespace
}  // namespace strata::gguf
