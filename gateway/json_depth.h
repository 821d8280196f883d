// A nesting bound for JSON that comes from outside (request bodies, the
// strings inside them that are parsed again, model output parsed as tool
// calls). nlohmann's parser is iterative, but copying, dumping and comparing
// a value recurse once per level, and so does the chat template engine: a
// 140 KB body of nested brackets would overflow a thread's stack and take the
// whole gateway down. The text is checked before it is parsed.
#ifndef TPSERVE_GATEWAY_JSON_DEPTH_H_
#define TPSERVE_GATEWAY_JSON_DEPTH_H_

#include <string_view>

namespace tpserve::gateway {

// Deepest nesting of arrays and objects accepted (the top-level value is
// level 1). Tool parameter schemas, the deepest legitimate input, stay far
// below it.
inline constexpr int kMaxJsonDepth = 128;

// Whether `text` nests arrays and objects at most `max_depth` levels deep.
// Brackets inside strings do not count. One pass, no allocation; it does not
// validate the JSON (the parser does that afterwards).
bool JsonDepthWithin(std::string_view text, int max_depth = kMaxJsonDepth);

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_JSON_DEPTH_H_
