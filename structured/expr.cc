#include "structured/expr.h"

#include <algorithm>
#include <utility>

namespace tpserve::structured {
namespace {

constexpr uint32_t kSurrogateLo = 0xD800;
constexpr uint32_t kSurrogateHi = 0xDFFF;

int Utf8Length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

void EncodeUtf8(uint32_t cp, int len, uint8_t* out) {
  if (len == 1) {
    out[0] = static_cast<uint8_t>(cp);
    return;
  }
  static constexpr uint8_t kLead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
  for (int i = len - 1; i > 0; --i) {
    out[i] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    cp >>= 6;
  }
  out[0] = static_cast<uint8_t>(kLead[len] | cp);
}

}  // namespace

GrammarBuilder::GrammarBuilder() { AddRule("root"); }

RuleId GrammarBuilder::AddRule(std::string name) {
  rules_.push_back(Rule{std::move(name), -1});
  return static_cast<RuleId>(rules_.size() - 1);
}

ExprId GrammarBuilder::Add(Expr e) {
  exprs_.push_back(std::move(e));
  return static_cast<ExprId>(exprs_.size() - 1);
}

ExprId GrammarBuilder::Empty() { return Add(Expr{}); }

ExprId GrammarBuilder::Bytes(const ByteSet& bytes) {
  Expr e;
  e.kind = Expr::Kind::kBytes;
  e.bytes = bytes;
  return Add(std::move(e));
}

ExprId GrammarBuilder::ByteRange(uint8_t lo, uint8_t hi) {
  ByteSet set;
  for (int b = lo; b <= hi; ++b) set.set(b);
  return Bytes(set);
}

ExprId GrammarBuilder::Literal(std::string_view text) {
  std::vector<ExprId> items;
  items.reserve(text.size());
  for (char c : text) {
    uint8_t b = static_cast<uint8_t>(c);
    items.push_back(ByteRange(b, b));
  }
  return Seq(std::move(items));
}

ExprId GrammarBuilder::Seq(std::vector<ExprId> items) {
  if (items.empty()) return Empty();
  if (items.size() == 1) return items[0];
  Expr e;
  e.kind = Expr::Kind::kSeq;
  e.children = std::move(items);
  return Add(std::move(e));
}

ExprId GrammarBuilder::Alt(std::vector<ExprId> items) {
  if (items.size() == 1) return items[0];
  Expr e;
  e.kind = Expr::Kind::kAlt;  // an empty alternation matches nothing
  e.children = std::move(items);
  return Add(std::move(e));
}

ExprId GrammarBuilder::Repeat(ExprId item, int32_t min, int32_t max) {
  Expr e;
  e.kind = Expr::Kind::kRepeat;
  e.children = {item};
  e.min = min;
  e.max = max;
  return Add(std::move(e));
}

ExprId GrammarBuilder::Ref(RuleId rule) {
  Expr e;
  e.kind = Expr::Kind::kRef;
  e.rule = rule;
  return Add(std::move(e));
}

void GrammarBuilder::AddUtf8Range(uint32_t lo, uint32_t hi, std::vector<ExprId>* alts) {
  const int len = Utf8Length(lo);
  // Split until every continuation position spans a full or a single value,
  // so the range is a plain sequence of byte ranges (as RE2 does).
  for (int i = 1; i < len; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        AddUtf8Range(lo, lo | m, alts);
        AddUtf8Range((lo | m) + 1, hi, alts);
        return;
      }
      if ((hi & m) != m) {
        AddUtf8Range(lo, (hi & ~m) - 1, alts);
        AddUtf8Range(hi & ~m, hi, alts);
        return;
      }
    }
  }
  uint8_t a[4], b[4];
  EncodeUtf8(lo, len, a);
  EncodeUtf8(hi, len, b);
  std::vector<ExprId> seq;
  for (int i = 0; i < len; ++i) seq.push_back(ByteRange(a[i], b[i]));
  alts->push_back(Seq(std::move(seq)));
}

ExprId GrammarBuilder::Codepoints(const std::vector<CodepointRange>& ranges) {
  std::vector<ExprId> alts;
  ByteSet ascii;
  for (const CodepointRange& r : NormalizeRanges(ranges)) {
    static constexpr uint32_t kBounds[] = {0x7F, 0x7FF, 0xFFFF, kMaxCodepoint};
    uint32_t lo = r.lo;
    for (uint32_t bound : kBounds) {
      if (lo > r.hi) break;
      if (lo > bound) continue;
      const uint32_t hi = std::min(r.hi, bound);
      if (bound == 0x7F) {
        for (uint32_t c = lo; c <= hi; ++c) ascii.set(c);
      } else {
        AddUtf8Range(lo, hi, &alts);
      }
      lo = hi + 1;
    }
  }
  if (ascii.any()) alts.insert(alts.begin(), Bytes(ascii));
  return Alt(std::move(alts));
}

std::vector<CodepointRange> NormalizeRanges(std::vector<CodepointRange> ranges) {
  std::vector<CodepointRange> split;
  for (CodepointRange r : ranges) {
    r.hi = std::min(r.hi, GrammarBuilder::kMaxCodepoint);
    if (r.lo > r.hi) continue;
    if (r.lo < kSurrogateLo && r.hi >= kSurrogateLo) {
      split.push_back({r.lo, kSurrogateLo - 1});
      if (r.hi > kSurrogateHi) split.push_back({kSurrogateHi + 1, r.hi});
    } else if (r.lo >= kSurrogateLo && r.lo <= kSurrogateHi) {
      if (r.hi > kSurrogateHi) split.push_back({kSurrogateHi + 1, r.hi});
    } else {
      split.push_back(r);
    }
  }
  std::sort(split.begin(), split.end(),
            [](const CodepointRange& a, const CodepointRange& b) { return a.lo < b.lo; });
  std::vector<CodepointRange> out;
  for (const CodepointRange& r : split) {
    if (!out.empty() && r.lo <= out.back().hi + 1) {
      out.back().hi = std::max(out.back().hi, r.hi);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

std::vector<CodepointRange> ComplementRanges(const std::vector<CodepointRange>& ranges) {
  std::vector<CodepointRange> out;
  uint32_t next = 0;
  for (const CodepointRange& r : NormalizeRanges(ranges)) {
    if (r.lo > next) out.push_back({next, r.lo - 1});
    next = r.hi + 1;
  }
  if (next <= GrammarBuilder::kMaxCodepoint) out.push_back({next, GrammarBuilder::kMaxCodepoint});
  return NormalizeRanges(out);
}

}  // namespace tpserve::structured
