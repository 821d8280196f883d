// The benchmark corpus: every golden string of the repo (tokenizer encode
// goldens of Qwen2.5 and Qwen3, rendered chat templates), one per line,
// repeated in a deterministic shuffled order until the requested size.
#ifndef TPSERVE_BENCH_TOKENIZER_CORPUS_H_
#define TPSERVE_BENCH_TOKENIZER_CORPUS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tpserve::bench {

// Lines (each ending in "\n") totalling at least `min_bytes`.
absl::StatusOr<std::vector<std::string>> CorpusLines(size_t min_bytes);

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_TOKENIZER_CORPUS_H_
