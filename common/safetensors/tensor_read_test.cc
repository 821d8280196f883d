#include "common/safetensors/tensor_read.h"

#include <cstring>

#include "gtest/gtest.h"

namespace tpserve::safetensors {
namespace {

constexpr char kShard[] = "tests/fixtures/tiny-qwen2/model-00002-of-00004.safetensors";
constexpr char kTensor[] = "model.layers.0.self_attn.q_proj.weight";  // BF16 [256, 256]

class TensorReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto file = SafetensorsFile::Open(kShard);
    ASSERT_TRUE(file.ok()) << file.status();
    file_ = std::move(*file);
    auto view = file_->Get(kTensor);
    ASSERT_TRUE(view.ok());
    view_ = *view;
    auto full = ReadFloat32(view_);
    ASSERT_TRUE(full.ok());
    full_ = *full;
  }
  std::unique_ptr<SafetensorsFile> file_;
  TensorView view_;
  std::vector<float> full_;
};

TEST_F(TensorReadTest, FullReadConvertsBf16) {
  ASSERT_EQ(view_.shape, (std::vector<int64_t>{256, 256}));
  uint16_t bits;
  std::memcpy(&bits, view_.data + 2 * 1000, 2);
  EXPECT_EQ(full_[1000], Bf16ToFloat(bits));
}

TEST_F(TensorReadTest, RowSliceMatchesFull) {
  auto rows = ReadRowsFloat32(view_, 64, 128);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 64u * 256);
  for (int r = 0; r < 64; ++r) {
    for (int c = 0; c < 256; ++c) ASSERT_EQ((*rows)[r * 256 + c], full_[(r + 64) * 256 + c]);
  }
  auto raw = SliceRows(view_, 64, 128);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->shape, (std::vector<int64_t>{64, 256}));
  EXPECT_EQ(raw->nbytes, 64u * 256 * 2);
  EXPECT_EQ(raw->data, view_.data + 64 * 256 * 2);
}

TEST_F(TensorReadTest, ColumnSliceMatchesFull) {
  auto cols = ReadColumnsFloat32(view_, 128, 192);
  ASSERT_TRUE(cols.ok()) << cols.status();
  ASSERT_EQ(cols->size(), 256u * 64);
  for (int r = 0; r < 256; ++r) {
    for (int c = 0; c < 64; ++c) ASSERT_EQ((*cols)[r * 64 + c], full_[r * 256 + 128 + c]);
  }
  auto raw = CopyColumnsRaw(view_, 128, 192);
  ASSERT_TRUE(raw.ok());
  ASSERT_EQ(raw->size(), 256u * 64 * 2);
  std::vector<float> converted(256 * 64);
  ConvertToFloat32(DType::kBF16, raw->data(), converted.size(), converted.data());
  EXPECT_EQ(converted, *cols);
}

TEST_F(TensorReadTest, OutOfRangeSlicesNameTheTensor) {
  for (auto result : {ReadRowsFloat32(view_, 200, 300), ReadColumnsFloat32(view_, -1, 4),
                      ReadColumnsFloat32(view_, 10, 5)}) {
    ASSERT_FALSE(result.ok());
    EXPECT_NE(std::string(result.status().message()).find(kTensor), std::string::npos);
  }
  auto bias = file_->Get("model.layers.0.self_attn.q_proj.bias");
  ASSERT_TRUE(bias.ok());
  EXPECT_FALSE(ReadColumnsFloat32(*bias, 0, 1).ok());  // 1-D has no columns
  auto part = ReadRowsFloat32(*bias, 10, 20);         // 1-D rows are elements
  ASSERT_TRUE(part.ok());
  EXPECT_EQ(part->size(), 10u);
}

}  // namespace
}  // namespace tpserve::safetensors
