// A Jinja2 interpreter sufficient for HuggingFace chat templates: parse once,
// render many times, with bounded work so hostile templates fail cleanly.
#ifndef TPSERVE_COMMON_TEXT_JINJA_H_
#define TPSERVE_COMMON_TEXT_JINJA_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/text/jinja_ast.h"
#include "common/text/jinja_value.h"

namespace tpserve::text::jinja {

// Largest string (or list, at 16 bytes an item) an expression or a builtin
// may build. Without it `{% set x = x ~ x %}` in a loop doubles memory each
// step long before the step or output limit trips.
inline constexpr size_t kMaxValueBytes = 64u << 20;

// Bounds on one render; exceeding any fails with an error naming the limit.
struct RenderLimits {
  int64_t max_steps = 1'000'000;          // statements + loop iterations + calls
  size_t max_output_bytes = 64u << 20;
  int max_call_depth = 64;               // nested macro calls
  size_t max_value_bytes = kMaxValueBytes;  // one string or list value
  // Wall-clock time for the whole render. The limits above bound each step,
  // not the work within one (a step may copy up to max_value_bytes, a million
  // times); this bounds the total. Chat templates render in milliseconds; a
  // million cheap steps take 1-4 s on a loaded 2-core machine, so the
  // deadline stays above what the step limit alone allows.
  absl::Duration max_duration = absl::Seconds(5);
};

// A parsed template. Copyable (shares the immutable syntax tree).
class Template {
 public:
  // Parses `source`; syntax errors name line:column.
  static absl::StatusOr<Template> Parse(const std::string& source);
  // Renders with `vars` as the template's global variables (builtins such as
  // range, namespace and raise_exception are added). Errors name line:column.
  absl::StatusOr<std::string> Render(const Dict& vars, const RenderLimits& limits = {}) const;

 private:
  explicit Template(std::shared_ptr<const Program> p) : program_(std::move(p)) {}
  std::shared_ptr<const Program> program_;
};

}  // namespace tpserve::text::jinja

#endif  // TPSERVE_COMMON_TEXT_JINJA_H_
