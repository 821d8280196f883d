// Test helper: a one-file safetensors checkpoint in a fresh folder.
#ifndef TPSERVE_COMMON_QUANT_TEST_CHECKPOINT_H_
#define TPSERVE_COMMON_QUANT_TEST_CHECKPOINT_H_

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/safetensors/checkpoint.h"
#include "common/safetensors/writer.h"
#include "gtest/gtest.h"

namespace tpserve::testing {

// Writes `tensors` to <TEST_TMPDIR>/<name>/model.safetensors and opens the
// folder; null (with a test failure) if either fails.
inline std::unique_ptr<safetensors::Checkpoint> WriteCheckpoint(const std::string& name,
                                                                const std::vector<safetensors::TensorData>& tensors) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::filesystem::path dir = std::filesystem::path(tmp ? tmp : "/tmp") / name;
  std::filesystem::create_directories(dir);
  EXPECT_TRUE(safetensors::WriteSafetensors((dir / "model.safetensors").string(), tensors).ok());
  auto ckpt = safetensors::Checkpoint::Open(dir.string());
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  return ckpt.ok() ? std::move(*ckpt) : nullptr;
}

}  // namespace tpserve::testing

#endif  // TPSERVE_COMMON_QUANT_TEST_CHECKPOINT_H_
