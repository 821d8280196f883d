// The tokenizer of tests/fixtures/tiny-qwen2-chat, loaded once for the
// fuzz targets that need one (from LLVMFuzzerInitialize).
#ifndef TPSERVE_FUZZ_FIXTURE_TOKENIZER_H_
#define TPSERVE_FUZZ_FIXTURE_TOKENIZER_H_

#include "common/text/tokenizer.h"

namespace tpserve::fuzz {

// Loads the fixture tokenizer on the first call (aborting if it cannot:
// fuzzing without it would test nothing) and returns it.
const text::Tokenizer& FixtureTokenizer(const char* argv0);

}  // namespace tpserve::fuzz

#endif  // TPSERVE_FUZZ_FIXTURE_TOKENIZER_H_
