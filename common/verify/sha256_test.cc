#include "common/verify/sha256.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace tpserve::verify {
namespace {

// FIPS 180-2 test vectors.
TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, FileEqualsInMemoryAcrossChunks) {
  // Empty, tiny (the buffer is sized to the file), exactly the 4 MiB read
  // buffer, and larger than it (the streaming path).
  for (size_t size : {size_t{0}, size_t{1}, size_t{4} << 20, size_t{5 * 1024 * 1024 + 17}}) {
    std::string data(size, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + (i >> 9));
    const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/blob" + std::to_string(size);
    std::ofstream(path, std::ios::binary) << data;
    auto got = Sha256File(path);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, Sha256Hex(data)) << size;
  }
  const std::string missing = std::string(std::getenv("TEST_TMPDIR")) + "/blob.missing";
  EXPECT_EQ(Sha256File(missing).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tpserve::verify
