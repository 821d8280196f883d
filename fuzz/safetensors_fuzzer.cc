// Fuzzes the safetensors reader: any file content must be refused with a
// clean error or give tensors whose bytes lie inside the file.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/safetensors/dtype.h"
#include "common/safetensors/safetensors_file.h"
#include "fuzz/fuzz_util.h"

namespace {

using tpserve::fuzz::Check;

// An in-memory file reachable by path (the reader takes a path and maps it).
int MemFd() {
  static const int fd = memfd_create("safetensors_fuzz", 0);
  Check(fd >= 0, "memfd_create failed");
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = MemFd();
  Check(ftruncate(fd, 0) == 0, "ftruncate failed");
  Check(pwrite(fd, data, size, 0) == static_cast<ssize_t>(size), "pwrite failed");
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto file = tpserve::safetensors::SafetensorsFile::Open(path);
  if (!file.ok()) return 0;
  for (const std::string& name : (*file)->names()) {
    auto t = (*file)->Get(name);
    Check(t.ok(), "a listed tensor cannot be read");
    Check(t->nbytes == static_cast<size_t>(t->numel()) * tpserve::safetensors::DTypeSize(t->dtype),
          "nbytes disagrees with shape and dtype");
    Check(t->nbytes <= size, "tensor larger than the file");
    // Touch the first and last byte: ASan and the mapping bounds catch a
    // tensor that reaches past the file.
    if (t->nbytes > 0) {
      volatile uint8_t first = t->data[0];
      volatile uint8_t last = t->data[t->nbytes - 1];
      (void)first;
      (void)last;
    }
    (void)t->ShapeString();
  }
  return 0;
}
