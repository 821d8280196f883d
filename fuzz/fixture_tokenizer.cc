#include "fuzz/fixture_tokenizer.h"

#include <cstdio>
#include <cstdlib>

#include "fuzz/fuzz_util.h"

namespace tpserve::fuzz {

const text::Tokenizer& FixtureTokenizer(const char* argv0) {
  static const text::Tokenizer* tokenizer = [argv0] {
    SetArgv0(argv0);
    auto tok = text::Tokenizer::Load(FixturePath("tests/fixtures/tiny-qwen2-chat/tokenizer.json"));
    if (!tok.ok()) {
      std::fprintf(stderr, "fuzz: %s\n", tok.status().ToString().c_str());
      std::abort();
    }
    return tok->release();
  }();
  return *tokenizer;
}

}  // namespace tpserve::fuzz
