// Grammar expressions: the builder every front end (JSON Schema, regex,
// choice) writes to before `CompileGrammar` turns it into byte automata.
#ifndef TPSERVE_STRUCTURED_EXPR_H_
#define TPSERVE_STRUCTURED_EXPR_H_

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tpserve::structured {

using ExprId = int32_t;
using RuleId = int32_t;
using ByteSet = std::bitset<256>;

// One node of an expression tree. Trees are stored flat in the builder.
struct Expr {
  enum class Kind { kEmpty, kBytes, kSeq, kAlt, kRepeat, kRef };
  Kind kind = Kind::kEmpty;
  ByteSet bytes;                 // kBytes
  std::vector<ExprId> children;  // kSeq, kAlt; kRepeat has one
  int32_t min = 0;               // kRepeat
  int32_t max = 0;               // kRepeat; kUnbounded for no upper bound
  RuleId rule = -1;              // kRef
};

// An inclusive range of Unicode code points.
struct CodepointRange {
  uint32_t lo;
  uint32_t hi;
};

// Collects rules (named, possibly recursive) and their expressions. Rule 0,
// created by the constructor, is the root.
class GrammarBuilder {
 public:
  static constexpr int32_t kUnbounded = -1;
  static constexpr uint32_t kMaxCodepoint = 0x10FFFF;

  GrammarBuilder();

  // Declares a rule (its body is set later, so rules can refer to each other).
  RuleId AddRule(std::string name);
  void SetRule(RuleId rule, ExprId body) { rules_[rule].body = body; }
  RuleId root() const { return 0; }

  ExprId Empty();
  ExprId Bytes(const ByteSet& bytes);
  ExprId ByteRange(uint8_t lo, uint8_t hi);
  // The bytes of `text`, in order.
  ExprId Literal(std::string_view text);
  ExprId Seq(std::vector<ExprId> items);
  ExprId Alt(std::vector<ExprId> items);
  ExprId Repeat(ExprId item, int32_t min, int32_t max);
  ExprId Optional(ExprId item) { return Repeat(item, 0, 1); }
  ExprId Star(ExprId item) { return Repeat(item, 0, kUnbounded); }
  ExprId Plus(ExprId item) { return Repeat(item, 1, kUnbounded); }
  ExprId Ref(RuleId rule);
  // The UTF-8 encodings of every code point in `ranges` (surrogates excluded).
  ExprId Codepoints(const std::vector<CodepointRange>& ranges);

  int num_rules() const { return static_cast<int>(rules_.size()); }
  const std::string& rule_name(RuleId r) const { return rules_[r].name; }
  ExprId rule_body(RuleId r) const { return rules_[r].body; }
  const Expr& expr(ExprId id) const { return exprs_[id]; }

 private:
  struct Rule {
    std::string name;
    ExprId body = -1;
  };
  ExprId Add(Expr e);
  // Appends the byte sequences of code points [lo, hi] that share a UTF-8 length.
  void AddUtf8Range(uint32_t lo, uint32_t hi, std::vector<ExprId>* alts);

  std::vector<Rule> rules_;
  std::vector<Expr> exprs_;
};

// Normalizes code point ranges: sorted, merged, surrogates removed.
std::vector<CodepointRange> NormalizeRanges(std::vector<CodepointRange> ranges);
// The code points of [0, kMaxCodepoint] not in `ranges`.
std::vector<CodepointRange> ComplementRanges(const std::vector<CodepointRange>& ranges);

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_EXPR_H_
