#include "worker/model/testing/goldens.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/safetensors/safetensors_file.h"
#include "common/safetensors/tensor_read.h"
#include "common/status_macros.h"
#include "worker/model/cpu_backend.h"

namespace tpserve::worker::testing {

absl::StatusOr<std::vector<GoldenPrompt>> LoadGoldens(const std::string& dir) {
  TP_ASSIGN_OR_RETURN(auto file,
                      safetensors::SafetensorsFile::Open(dir + "/goldens.safetensors"));
  std::vector<GoldenPrompt> out;
  for (int i = 0;; ++i) {
    const std::string p = absl::StrCat("p", i, ".");
    if (!file->Has(p + "input_ids")) break;
    GoldenPrompt g;
    TP_ASSIGN_OR_RETURN(auto ids, file->Get(p + "input_ids"));
    TP_ASSIGN_OR_RETURN(g.input_ids, safetensors::ReadInt32(ids));
    TP_ASSIGN_OR_RETURN(auto last, file->Get(p + "last_logits"));
    TP_ASSIGN_OR_RETURN(g.last_logits, safetensors::ReadFloat32(last));
    TP_ASSIGN_OR_RETURN(auto argmax, file->Get(p + "argmax"));
    TP_ASSIGN_OR_RETURN(g.argmax, safetensors::ReadInt32(argmax));
    TP_ASSIGN_OR_RETURN(auto greedy, file->Get(p + "greedy"));
    TP_ASSIGN_OR_RETURN(g.greedy, safetensors::ReadInt32(greedy));
    if (file->Has(p + "all_logits")) {
      TP_ASSIGN_OR_RETURN(auto all, file->Get(p + "all_logits"));
      TP_ASSIGN_OR_RETURN(g.all_logits, safetensors::ReadFloat32(all));
    }
    out.push_back(std::move(g));
  }
  if (out.empty()) return absl::NotFoundError(absl::StrCat(dir, ": no goldens"));
  return out;
}

double RelativeError(const float* got, const float* ref, size_t n) {
  double max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < n; ++i) {
    max_diff = std::max(max_diff, std::abs(static_cast<double>(got[i]) - ref[i]));
    max_ref = std::max(max_ref, std::abs(static_cast<double>(ref[i])));
  }
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}

int32_t ArgMax(const float* values, size_t n) {
  return static_cast<int32_t>(std::max_element(values, values + n) - values);
}

absl::StatusOr<std::unique_ptr<Backend>> LoadCpu(const LoadOptions& options, int num_blocks,
                                                 Communicator* comm) {
  TP_ASSIGN_OR_RETURN(auto backend, CreateCpuBackend());
  TP_RETURN_IF_ERROR(backend->Load(options, comm));
  TP_RETURN_IF_ERROR(backend->InitCache(num_blocks));
  return backend;
}

}  // namespace tpserve::worker::testing
