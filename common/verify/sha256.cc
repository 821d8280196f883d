#include "common/verify/sha256.h"

#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tpserve::verify {
namespace {

struct CtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using Ctx = std::unique_ptr<EVP_MD_CTX, CtxDeleter>;

constexpr size_t kMaxBuffer = size_t{4} << 20;

std::string Hex(const unsigned char* digest, unsigned int len) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kDigits[digest[i] >> 4]);
    out.push_back(kDigits[digest[i] & 15]);
  }
  return out;
}

}  // namespace

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return Hex(digest, len);
}

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  Ctx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("EVP_DigestInit_ex failed");
  }
  // 4 MiB reads for big files, but no bigger than the file (+1 to see its
  // end in one read), and not zeroed: a zeroed 4 MiB buffer for every small
  // file (config.json, tokenizer files) was most of verify's time on a small
  // model (and of verify_fuzzer's).
  std::error_code ec;
  const uintmax_t file_size = std::filesystem::file_size(path, ec);
  const size_t size = ec ? kMaxBuffer : static_cast<size_t>(std::min<uintmax_t>(kMaxBuffer, file_size + 1));
  const auto buffer = std::make_unique_for_overwrite<char[]>(size);
  while (in) {
    in.read(buffer.get(), static_cast<std::streamsize>(size));
    const std::streamsize n = in.gcount();
    if (n > 0) EVP_DigestUpdate(ctx.get(), buffer.get(), static_cast<size_t>(n));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  return Hex(digest, len);
}

}  // namespace tpserve::verify
