#include "common/text/unicode.h"

#include <algorithm>
#include <array>
#include <vector>

#include "common/text/unicode_tables.h"

namespace tpserve::text {
namespace {

// Code points below this get a flat flag table (covers every CJK extension
// block up to plane 3); the rest fall back to binary search of the ranges.
constexpr uint32_t kFlatLimit = 0x32400;

bool InRanges(const tables::CodeRange* r, size_t n, uint32_t cp) {
  const tables::CodeRange* end = r + n;
  const tables::CodeRange* it = std::upper_bound(
      r, end, cp, [](uint32_t v, const tables::CodeRange& x) { return v < x.first; });
  return it != r && cp <= (it - 1)->last;
}

bool IsWhiteSpace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

uint8_t SlowClassOf(uint32_t cp) {
  uint8_t f = 0;
  if (InRanges(tables::kLetterRanges, tables::kLetterRangesSize, cp)) f |= kLetter;
  if (InRanges(tables::kNumberRanges, tables::kNumberRangesSize, cp)) f |= kNumber;
  if (IsWhiteSpace(cp)) f |= kWhitespace;
  if (InRanges(tables::kNfcUnsafeRanges, tables::kNfcUnsafeRangesSize, cp)) f |= kNfcUnsafe;
  return f;
}

const std::vector<uint8_t>& FlatTable() {
  static const std::vector<uint8_t>* table = [] {
    auto* t = new std::vector<uint8_t>(kFlatLimit, 0);
    auto fill = [t](const tables::CodeRange* r, size_t n, uint8_t flag) {
      for (size_t i = 0; i < n && r[i].first < kFlatLimit; ++i) {
        for (uint32_t cp = r[i].first; cp <= r[i].last && cp < kFlatLimit; ++cp) (*t)[cp] |= flag;
      }
    };
    fill(tables::kLetterRanges, tables::kLetterRangesSize, kLetter);
    fill(tables::kNumberRanges, tables::kNumberRangesSize, kNumber);
    fill(tables::kNfcUnsafeRanges, tables::kNfcUnsafeRangesSize, kNfcUnsafe);
    for (uint32_t cp = 0; cp < 0x3001; ++cp) {
      if (IsWhiteSpace(cp)) (*t)[cp] |= kWhitespace;
    }
    return t;
  }();
  return *table;
}

// Hangul syllable arithmetic (Unicode chapter 3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount;
constexpr uint32_t kSCount = kLCount * kNCount;

uint8_t CombiningClassOf(uint32_t cp) {
  const auto* b = tables::kCombiningClasses;
  const auto* e = b + tables::kCombiningClassesSize;
  const auto* it = std::lower_bound(
      b, e, cp, [](const tables::CombiningClass& x, uint32_t v) { return x.cp < v; });
  return (it != e && it->cp == cp) ? it->ccc : 0;
}

void Decompose(uint32_t cp, std::vector<uint32_t>* out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const uint32_t s = cp - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  const auto* b = tables::kDecompositions;
  const auto* e = b + tables::kDecompositionsSize;
  const auto* it = std::lower_bound(
      b, e, cp, [](const tables::Decomposition& x, uint32_t v) { return x.cp < v; });
  if (it == e || it->cp != cp) {
    out->push_back(cp);
    return;
  }
  Decompose(it->first, out);
  if (it->second != 0) Decompose(it->second, out);
}

// Returns the primary composite of (a, b), or 0 if there is none.
uint32_t Compose(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const auto* first = tables::kCompositions;
  const auto* last = first + tables::kCompositionsSize;
  const auto* it = std::lower_bound(first, last, std::make_pair(a, b),
                                    [](const tables::Composition& x, std::pair<uint32_t, uint32_t> v) {
                                      return std::make_pair(x.first, x.second) < v;
                                    });
  return (it != last && it->first == a && it->second == b) ? it->composite : 0;
}

// Length of a valid UTF-8 sequence starting at s[i], 0 if ill-formed there, or
// -k if s ends after k bytes of a valid but incomplete sequence.
int SequenceLength(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return 1;
  int need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (int k = 1; k < need; ++k) {
    if (i + k >= s.size()) return -k;
    const auto b = static_cast<uint8_t>(s[i + k]);
    const bool ok = (k == 1) ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return k == 1 ? 0 : -100 - k;  // -100-k: k bytes form a maximal invalid subpart
  }
  return need;
}

}  // namespace

uint8_t ClassOf(uint32_t cp) {
  if (cp < kFlatLimit) return FlatTable()[cp];
  return SlowClassOf(cp);
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const int n = SequenceLength(s, i);
    if (n <= 0) return false;
    i += n;
  }
  return true;
}

size_t DecodablePrefixLength(std::string_view s) {
  // Only the last three bytes can hold an incomplete sequence.
  const size_t from = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t i = from; i < s.size(); ++i) {
    const auto b = static_cast<uint8_t>(s[i]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte
    const int n = SequenceLength(s, i);
    if (n < 0 && n > -100) return i;  // valid prefix reaching the end
  }
  return s.size();
}

std::string Utf8Lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const int n = SequenceLength(s, i);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      // A maximal subpart: the lead byte plus the valid continuation bytes.
      if (n == 0) {
        i += 1;
      } else if (n > -100) {
        i += -n;  // incomplete at end
      } else {
        i += -(n + 100);
      }
    }
  }
  return out;
}

bool IsNfcQuick(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    int len;
    const uint32_t cp = DecodeUtf8(s, i, &len);
    if (ClassOf(cp) & kNfcUnsafe) return false;
    i += len;
  }
  return true;
}

namespace {

// Full NFC of a chunk: decompose, canonically order, recompose.
void NormalizeChunk(std::string_view s, std::string* result) {
  std::vector<uint32_t> cps;
  cps.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    int len;
    Decompose(DecodeUtf8(s, i, &len), &cps);
    i += len;
  }
  // Canonical ordering: stable sort each run of non-starters by class.
  std::vector<uint8_t> ccc(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) ccc[i] = CombiningClassOf(cps[i]);
  for (size_t i = 0; i < cps.size();) {
    if (ccc[i] == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && ccc[j] != 0) ++j;
    for (size_t a = i + 1; a < j; ++a) {  // insertion sort keeps it stable
      for (size_t b = a; b > i && ccc[b - 1] > ccc[b]; --b) {
        std::swap(ccc[b - 1], ccc[b]);
        std::swap(cps[b - 1], cps[b]);
      }
    }
    i = j;
  }
  // Canonical composition.
  std::vector<uint32_t> out;
  std::vector<uint8_t> out_ccc;
  out.reserve(cps.size());
  long starter = -1;
  for (size_t i = 0; i < cps.size(); ++i) {
    const uint32_t c = cps[i];
    const uint8_t cc = ccc[i];
    if (starter >= 0) {
      const uint8_t last_cc = out_ccc.back();
      const bool blocked = (static_cast<size_t>(starter) != out.size() - 1) &&
                           (last_cc == 0 || last_cc >= cc);
      if (!blocked) {
        const uint32_t comp = Compose(out[starter], c);
        if (comp != 0) {
          out[starter] = comp;
          continue;
        }
      }
    }
    out.push_back(c);
    out_ccc.push_back(cc);
    if (cc == 0) starter = static_cast<long>(out.size()) - 1;
  }
  for (uint32_t c : out) AppendUtf8(c, result);
}

}  // namespace

std::string NormalizeNfc(std::string_view s) {
  // Only the stretches around "unsafe" code points can change: each one runs
  // from the last safe starter before an unsafe code point (which may compose
  // with what follows) to the next safe code point (which combines with
  // nothing before it). Everything else is copied as is.
  std::string result;
  result.reserve(s.size() + 8);
  size_t copied = 0, last_safe = 0;
  for (size_t i = 0; i < s.size();) {
    int len = 1;
    const uint32_t cp = static_cast<uint8_t>(s[i]) < 0x80 ? s[i] : DecodeUtf8(s, i, &len);
    if (!(ClassOf(cp) & kNfcUnsafe)) {
      last_safe = i;
      i += len;
      continue;
    }
    const size_t start = std::max(last_safe, copied);
    size_t end = i + len;
    while (end < s.size()) {
      int l = 1;
      const uint32_t c = static_cast<uint8_t>(s[end]) < 0x80 ? s[end] : DecodeUtf8(s, end, &l);
      if (!(ClassOf(c) & kNfcUnsafe)) break;
      end += l;
    }
    result.append(s.substr(copied, start - copied));
    NormalizeChunk(s.substr(start, end - start), &result);
    copied = end;
    last_safe = end;
    i = end;
  }
  result.append(s.substr(copied));
  return result;
}

}  // namespace tpserve::text
