// Writer -> reader round trips: every value type, nested arrays, UTF-8 strings, many tensors.
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "gguf/gguf_test_util.h"
#include "gguf/reader.h"
#include "gguf/writer.h"

namespace strata::gguf {
namespace {

using test::TempFile;
using namespace std::string_literals;

Value str(const std::string& s) { return Value{s}; }

std::vector<KeyValue> every_value_type() {
  std::vector<KeyValue> kvs = {
      {"t.u8", Value{uint8_t(255)}},
      {"t.i8", Value{int8_t(-128)}},
      {"t.u16", Value{uint16_t(65535)}},
      {"t.i16", Value{int16_t(-32768)}},
      {"t.u32", Value{std::numeric_limits<uint32_t>::max()}},
      {"t.i32", Value{std::numeric_limits<int32_t>::min()}},
      {"t.f32", Value{-1.25e-38f}},
      {"t.bool.true", Value{true}},
      {"t.bool.false", Value{false}},
      {"t.str", str("plain")},
      {"t.str.empty", str("")},
      {"t.str.utf8", str("h\u00e9llo \u65e5\u672c\u8a9e \U0001F600 \0 nul inside"s)},
      {"t.u64", Value{std::numeric_limits<uint64_t>::max()}},
      {"t.i64", Value{std::numeric_limits<int64_t>::min()}},
      {"t.f64", Value{std::numeric_limits<double>::denorm_min()}},
      {"t.f32.inf", Value{-std::numeric_limits<float>::infinity()}},
      {"t.f64.negzero", Value{-0.0}},
      {"t.arr.u8", make_array(ValueType::UINT8, {Value{uint8_t(1)}, Value{uint8_t(2)}})},
      {"t.arr.i64", make_array(ValueType::INT64, {Value{int64_t(-1)}, Value{std::numeric_limits<int64_t>::max()}})},
      {"t.arr.f32", make_array(ValueType::FLOAT32, {Value{0.5f}, Value{-2.0f}, Value{3e30f}})},
      {"t.arr.bool", make_array(ValueType::BOOL, {Value{true}, Value{false}, Value{true}})},
      {"t.arr.str", make_array(ValueType::STRING, {str("<s>"), str(""), str("\u2581the"), str("\xc3\xa9")})},
      {"t.arr.empty.u32", make_array(ValueType::UINT32, {})},
      {"t.arr.empty.str", make_array(ValueType::STRING, {})},
      {"t.arr.nested",
       make_array(ValueType::ARRAY, {make_array(ValueType::INT32, {Value{1}, Value{-2}}),
                                     make_array(ValueType::INT32, {}),
                                     make_array(ValueType::STRING, {str("mixed"), str("inner")})})},
  };
  // Three levels: [[[u16]]].
  Value inner = make_array(ValueType::UINT16, {Value{uint16_t(7)}});
  Value mid = make_array(ValueType::ARRAY, {inner, inner});
  kvs.push_back({"t.arr.deep", make_array(ValueType::ARRAY, {mid})});
  kvs.push_back({"\u30e2\u30c7\u30eb.\u540d\u524d", str("key in UTF-8")});
  return kvs;
}

TEST(GgufRoundTrip, EveryValueType) {
  TempFile tmp("values.gguf");
  const auto kvs = every_value_type();
  write_file(tmp.path, kvs, {});
  const File f = File::open(tmp.path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  ASSERT_EQ(f.metadata().size(), kvs.size());
  for (size_t i = 0; i < kvs.size(); ++i) {
    EXPECT_EQ(f.metadata()[i].key, kvs[i].key);
    EXPECT_EQ(f.metadata()[i].value.type(), kvs[i].value.type()) << kvs[i].key;
    EXPECT_TRUE(f.metadata()[i].value == kvs[i].value) << kvs[i].key;
  }
  EXPECT_EQ(f.get("t.str.utf8").as_string("utf8"), "h\u00e9llo \u65e5\u672c\u8a9e \U0001F600 \0 nul inside"s);
  EXPECT_TRUE(std::signbit(f.get("t.f64.negzero").as_double("negzero")));
  EXPECT_TRUE(f.tensors().empty());
}

TEST(GgufRoundTrip, NanKeepsItsBits) {
  TempFile tmp("nan.gguf");
  uint32_t bits = 0x7fc12345;
  float nan;
  std::memcpy(&nan, &bits, 4);
  write_file(tmp.path, {{"nan", Value{nan}}}, {});
  const File f = File::open(tmp.path);
  const float back = std::get<float>(f.get("nan").data);
  uint32_t back_bits;
  std::memcpy(&back_bits, &back, 4);
  EXPECT_EQ(back_bits, bits);
}

struct TensorCase {
  std::string name;
  DType type;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

std::vector<TensorCase> many_tensors() {
  const DType types[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q8_0, DType::Q4_K,
                         DType::Q6_K, DType::Q5_1, DType::I8,   DType::I32,  DType::IQ4_NL};
  std::vector<TensorCase> out;
  for (int i = 0; i < 60; ++i) {
    const DType type = types[i % std::size(types)];
    const int64_t block = type_traits(type).block_size;
    std::vector<int64_t> shape = {block * (1 + i % 3)};
    for (int d = 1; d < 1 + i % 4; ++d) shape.push_back(1 + (i + d) % 5);
    int64_t rows = 1;
    for (size_t d = 1; d < shape.size(); ++d) rows *= shape[d];
    const size_t nbytes = row_bytes(type, shape[0]) * size_t(rows);
    out.push_back({fmt::format("blk.{}.w", i), type, shape, test::random_bytes(nbytes, uint32_t(i))});
  }
  return out;
}

void check_tensors(const File& f, const std::vector<TensorCase>& cases) {
  ASSERT_EQ(f.tensors().size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const TensorInfo& t = f.tensors()[i];
    SCOPED_TRACE(cases[i].name);
    EXPECT_EQ(t.name, cases[i].name);
    EXPECT_EQ(t.type, cases[i].type);
    EXPECT_EQ(t.shape, cases[i].shape);
    EXPECT_EQ(t.nbytes, cases[i].bytes.size());
    EXPECT_EQ(t.offset % f.alignment(), 0u);
    EXPECT_EQ(size_t(t.data - reinterpret_cast<const uint8_t*>(f.tensors()[0].data)) + f.tensors()[0].offset, t.offset);
    ASSERT_NE(t.data, nullptr);
    EXPECT_EQ(std::memcmp(t.data, cases[i].bytes.data(), t.nbytes), 0);
    EXPECT_EQ(f.find_tensor(t.name), &t);
  }
}

TEST(GgufRoundTrip, ManyTensorsOfSeveralTypes) {
  TempFile tmp("tensors.gguf");
  const auto cases = many_tensors();
  std::vector<TensorData> data;
  for (const auto& c : cases) data.push_back({c.name, c.type, c.shape, c.bytes});
  write_file(tmp.path, {{"general.architecture", str("test")}}, data);
  const File f = File::open(tmp.path);
  check_tensors(f, cases);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  EXPECT_EQ(f.file_size() % 32, 0u);  // the data section ends padded
  EXPECT_EQ(f.find_tensor("missing"), nullptr);
}

// Released pages read the file again: a tensor of several pages, released (whole and in parts,
// and outside the mapping: nothing happens) still has its bytes.
TEST(GgufRoundTrip, ReleasedPagesKeepTheirBytes) {
  TempFile tmp("release.gguf");
  const std::vector<uint8_t> bytes = test::random_bytes(5 * 4096 * 4, 7);
  write_file(tmp.path, {{"general.architecture", str("test")}}, {{"big", DType::F32, {5 * 4096}, bytes}});
  const File f = File::open(tmp.path);
  const TensorInfo& t = *f.find_tensor("big");
  ASSERT_EQ(t.nbytes, bytes.size());
  f.release_pages(t.data, t.nbytes);
  EXPECT_EQ(std::memcmp(t.data, bytes.data(), bytes.size()), 0);
  f.release_pages(static_cast<const uint8_t*>(t.data) + 100, 3 * 4096);
  f.release_pages(bytes.data(), bytes.size());  // not in the file
  EXPECT_EQ(std::memcmp(t.data, bytes.data(), bytes.size()), 0);
  const std::vector<uint8_t> in_memory = test::read_bytes(tmp.path);
  const File parsed = File::parse(in_memory, "in memory");  // not mapped: nothing happens
  parsed.release_pages(in_memory.data(), in_memory.size());
  EXPECT_EQ(std::memcmp(parsed.find_tensor("big")->data, bytes.data(), bytes.size()), 0);
}

TEST(GgufRoundTrip, StreamingWriterWithAlignment64) {
  TempFile tmp("aligned.gguf");
  const auto cases = many_tensors();
  Writer w(tmp.path);
  w.set("general.architecture", str("test"));
  w.set_alignment(64);
  for (const auto& c : cases) w.add_tensor(c.name, c.type, c.shape);
  w.begin_data();
  for (const auto& c : cases) w.write_tensor_data(c.bytes);
  w.finish();
  const File f = File::open(tmp.path);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(std::get<uint32_t>(f.get("general.alignment").data), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  check_tensors(f, cases);
}

TEST(GgufRoundTrip, ParseFromMemoryEqualsOpen) {
  TempFile tmp("memory.gguf");
  write_file(tmp.path, every_value_type(), {});
  const auto bytes = test::read_bytes(tmp.path);
  const File a = File::open(tmp.path);
  const File b = File::parse(bytes, "in-memory");
  EXPECT_EQ(a.metadata().size(), b.metadata().size());
  EXPECT_TRUE(a.metadata().back().value == b.metadata().back().value);
  EXPECT_EQ(b.name(), "in-memory");
}

TEST(GgufRoundTrip, MovedFileKeepsItsIndexes) {
  TempFile tmp("moved.gguf");
  const auto cases = many_tensors();
  std::vector<TensorData> data;
  for (const auto& c : cases) data.push_back({c.name, c.type, c.shape, c.bytes});
  write_file(tmp.path, every_value_type(), data);
  File a = File::open(tmp.path);
  File b = std::move(a);
  File c = File::open(tmp.path);
  c = std::move(b);
  EXPECT_NE(c.find("t.arr.str"), nullptr);
  check_tensors(c, cases);
}

TEST(GgufWriter, RejectsWhatTheReaderWouldReject) {
  TempFile tmp("rejects.gguf");
  Writer w(tmp.path);
  w.set("a", Value{1});
  EXPECT_THROW(w.set("a", Value{2}), Error);
  EXPECT_THROW(w.set("", Value{2}), Error);
  EXPECT_THROW(w.set("bad\xff", Value{2}), Error);
  EXPECT_THROW(w.set("mixed", Value{Array{ValueType::INT32, {Value{1}, Value{2u}}}}), Error);
  EXPECT_THROW(w.set("general.alignment", Value{uint64_t(64)}), Error);
  EXPECT_THROW(w.set("general.alignment", Value{uint32_t(48)}), Error);
  EXPECT_THROW(w.set_alignment(0), Error);
  EXPECT_THROW(w.set_alignment(uint64_t(1) << 33), Error);
  EXPECT_THROW(w.add_tensor("t", DType::Q4_0, {33}), Error);
  EXPECT_THROW(w.add_tensor("t", DType::F32, {}), Error);
  EXPECT_THROW(w.add_tensor("t", DType::F32, {1, 1, 1, 1, 1}), Error);
  EXPECT_THROW(w.add_tensor("t", DType::F32, {4, 0}), Error);
  EXPECT_THROW(w.add_tensor("t", DType::F32, {int64_t(1) << 40, int64_t(1) << 40}), Error);
  EXPECT_THROW(w.add_tensor(std::string(64, 'n'), DType::F32, {4}), Error);
  w.add_tensor("t", DType::F32, {4});
  EXPECT_THROW(w.add_tensor("t", DType::F32, {4}), Error);
  w.begin_data();
  EXPECT_THROW(w.set("late", Value{1}), Error);
  EXPECT_THROW(w.write_tensor_data(std::vector<uint8_t>(15)), Error);
  EXPECT_THROW(w.finish(), Error);  // tensor 't' not written
}

TEST(GgufWriter, UnfinishedFileIsRemoved) {
  TempFile tmp("unfinished.gguf");
  {
    Writer w(tmp.path);
    w.add_tensor("t", DType::F32, {4});
    w.begin_data();
    EXPECT_EQ(::access(tmp.path.c_str(), F_OK), 0);
  }
  EXPECT_NE(::access(tmp.path.c_str(), F_OK), 0);
}

TEST(GgufWriter, CannotCreateNamesThePath) {
  Writer w("/nonexistent-dir/x.gguf");
  try {
    w.begin_data();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.gguf: cannot create"), std::string::npos) << e.what();
  }
}

TEST(GgufValue, TypedAccess) {
  EXPECT_EQ(Value{uint8_t(200)}.as_int("x"), 200);
  EXPECT_EQ(Value{int16_t(-5)}.as_int("x"), -5);
  EXPECT_EQ(Value{uint64_t(1) << 63}.as_uint("x"), uint64_t(1) << 63);
  EXPECT_THROW(Value{uint64_t(1) << 63}.as_int("x"), Error);
  EXPECT_THROW(Value{int32_t(-1)}.as_uint("x"), Error);
  EXPECT_THROW(Value{true}.as_int("x"), Error);
  EXPECT_THROW(Value{1.5f}.as_int("x"), Error);
  EXPECT_DOUBLE_EQ(Value{int64_t(-3)}.as_double("x"), -3.0);
  EXPECT_DOUBLE_EQ(Value{0.5f}.as_double("x"), 0.5);
  EXPECT_THROW(str("1").as_double("x"), Error);
  EXPECT_TRUE(Value{true}.as_bool("x"));
  try {
    Value{uint32_t(1)}.as_string("llama.context_length");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "llama.context_length: expected a string, got u32");
  }
  EXPECT_EQ(value_type_name(ValueType::ARRAY), "arr");
  EXPECT_EQ(make_array(ValueType::STRING, {str("a")}).as_array("x").items.size(), 1u);
  EXPECT_THROW(make_array(ValueType::STRING, {Value{1}}), Error);
}

TEST(GgufFile, GetNamesTheFileAndKey) {
  TempFile tmp("get.gguf");
  write_file(tmp.path, {{"present", Value{1}}}, {});
  const File f = File::open(tmp.path);
  EXPECT_EQ(f.get("present").as_int("present"), 1);
  EXPECT_EQ(f.find("absent"), nullptr);
  try {
    f.get("absent");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), tmp.path + ": metadata key 'absent' is missing");
  }
}

TEST(GgufFile, MissingFileAndDirectory) {
  EXPECT_THROW(File::open("/nonexistent/model.gguf"), Error);
  try {
    File::open(::testing::TempDir());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace strata::gguf
