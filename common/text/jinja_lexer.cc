#include "common/text/jinja_lexer.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/text/unicode.h"

namespace tpserve::text::jinja {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {}

  absl::StatusOr<std::vector<Token>> Run() {
    bool line_starting = true;
    while (i_ < src_.size()) {
      size_t open = src_.find('{', i_);
      while (open != std::string::npos && open + 1 < src_.size() &&
             std::strchr("{%#", src_[open + 1]) == nullptr) {
        open = src_.find('{', open + 1);
      }
      if (open == std::string::npos || open + 1 >= src_.size()) {
        Emit(Token::Kind::kText, src_.substr(i_), PosAt(i_));
        break;
      }
      const char kind = src_[open + 1];
      const char mod = open + 2 < src_.size() ? src_[open + 2] : 0;
      std::string text = src_.substr(i_, open - i_);
      const Pos text_pos = PosAt(i_);
      if (mod == '-') {
        size_t e = text.size();
        while (e > 0 && IsSpace(text[e - 1])) --e;
        text.resize(e);
      } else if (kind != '{' && mod != '+') {
        // lstrip_blocks: drop spaces/tabs between a line start and the tag.
        const size_t l = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if ((l > 0 || line_starting) && text.find_first_not_of(" \t", l) == std::string::npos) {
          text.resize(l);
        }
      }
      if (!text.empty()) Emit(Token::Kind::kText, std::move(text), text_pos);
      i_ = open + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
      bool strip_after = false;
      if (kind == '#') {
        const size_t close = src_.find("#}", i_);
        if (close == std::string::npos) return Error(open, "unterminated comment");
        strip_after = close > i_ && src_[close - 1] == '-';
        i_ = close + 2;
      } else {
        const bool is_block = kind == '%';
        const size_t first_token = tokens_.size() + 1;
        Emit(is_block ? Token::Kind::kBlockBegin : Token::Kind::kVarBegin, "", PosAt(open));
        auto closed = LexExpression(is_block ? '%' : '}', &strip_after);
        if (!closed.ok()) return closed;
        Emit(is_block ? Token::Kind::kBlockEnd : Token::Kind::kVarEnd, "", PosAt(i_ - 2));
        if (is_block && tokens_.size() == first_token + 2 && tokens_[first_token].kind == Token::Kind::kName &&
            tokens_[first_token].text == "raw") {
          if (auto st = LexRaw(open, strip_after); !st.ok()) return st;
          strip_after = raw_strip_after_;
        }
      }
      // Closing whitespace control; line_starting mirrors Jinja's check of
      // whether the tag's match ended with a newline.
      line_starting = false;
      if (strip_after) {
        while (i_ < src_.size() && IsSpace(src_[i_])) line_starting = src_[i_++] == '\n';
      } else if (kind != '{' && i_ < src_.size() && src_[i_] == '\n') {
        ++i_;  // trim_blocks
        line_starting = true;
      }
    }
    Emit(Token::Kind::kEof, "", PosAt(src_.size()));
    return std::move(tokens_);
  }

 private:
  Pos PosAt(size_t off) {
    // Incremental: offsets are requested in increasing order almost always.
    if (off < pos_off_) {
      pos_off_ = 0;
      pos_ = Pos{};
    }
    for (; pos_off_ < off && pos_off_ < src_.size(); ++pos_off_) {
      if (src_[pos_off_] == '\n') {
        ++pos_.line;
        pos_.col = 1;
      } else if ((static_cast<unsigned char>(src_[pos_off_]) & 0xC0) != 0x80) {
        ++pos_.col;
      }
    }
    return pos_;
  }

  void Emit(Token::Kind k, std::string text, Pos p) { tokens_.push_back(Token{k, std::move(text), p}); }

  absl::Status Error(size_t off, const std::string& msg) {
    const Pos p = PosAt(off);
    return absl::InvalidArgumentError(absl::StrCat("template syntax error at ", p.line, ":", p.col, ": ", msg));
  }

  // Lexes expression tokens up to the closing `}}` / `%}`.
  absl::Status LexExpression(char closer, bool* strip_after) {
    int depth = 0;  // open brackets, so `}}` inside a dict literal is not the end
    while (true) {
      while (i_ < src_.size() && IsSpace(src_[i_])) ++i_;
      if (i_ >= src_.size()) return Error(i_, closer == '%' ? "missing '%}'" : "missing '}}'");
      const char c = src_[i_];
      const auto at = [&](const char* s) { return src_.compare(i_, std::strlen(s), s) == 0; };
      if (depth == 0 && ((closer == '%' && at("-%}")) || (closer == '}' && at("-}}")))) {
        *strip_after = true;
        i_ += 3;
        return absl::OkStatus();
      }
      if (depth == 0 && ((closer == '%' && at("%}")) || (closer == '}' && at("}}")))) {
        i_ += 2;
        return absl::OkStatus();
      }
      const Pos p = PosAt(i_);
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = i_;
        while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        Emit(Token::Kind::kName, src_.substr(i_, e - i_), p);
        i_ = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t e = i_;
        bool is_float = false;
        while (e < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        if (e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
          is_float = true;
          ++e;
          while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
        }
        if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
          size_t f = e + 1;
          if (f < src_.size() && (src_[f] == '+' || src_[f] == '-')) ++f;
          if (f < src_.size() && std::isdigit(static_cast<unsigned char>(src_[f]))) {
            is_float = true;
            e = f;
            while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
          }
        }
        std::string num = src_.substr(i_, e - i_);
        std::erase(num, '_');
        Emit(is_float ? Token::Kind::kFloat : Token::Kind::kInt, std::move(num), p);
        i_ = e;
      } else if (c == '\'' || c == '"') {
        auto s = LexString();
        if (!s.ok()) return s.status();
        Emit(Token::Kind::kString, std::move(*s), p);
      } else {
        static const char* kOps[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                     ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
        const char* op = nullptr;
        for (const char* o : kOps) {
          if (at(o)) {
            op = o;
            break;
          }
        }
        if (op == nullptr) return Error(i_, absl::StrCat("unexpected character '", std::string(1, c), "'"));
        if (std::strchr("([{", op[0]) && op[1] == 0) ++depth;
        if (std::strchr(")]}", op[0]) && op[1] == 0 && depth > 0) --depth;
        Emit(Token::Kind::kOp, op, p);
        i_ += std::strlen(op);
      }
    }
  }

  // Decodes a quoted literal with Python's unicode-escape rules.
  absl::StatusOr<std::string> LexString() {
    const size_t start = i_;
    const char q = src_[i_++];
    std::string out;
    while (true) {
      if (i_ >= src_.size()) return Error(start, "unterminated string literal");
      const char c = src_[i_++];
      if (c == q) return out;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i_ >= src_.size()) return Error(start, "unterminated string literal");
      const char e = src_[i_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '0': out += '\0'; break;
        case '\n': break;
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (i_ + n > src_.size()) return Error(i_, "truncated escape in string literal");
          uint32_t cp = 0;
          for (size_t k = 0; k < n; ++k) {
            const char h = src_[i_ + k];
            if (!std::isxdigit(static_cast<unsigned char>(h))) return Error(i_, "bad escape in string literal");
            cp = cp * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
          }
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return Error(i_, "bad code point in escape");
          i_ += n;
          AppendUtf8(cp, &out);
          break;
        }
        default:
          out += '\\';
          out += e;
      }
    }
  }

  // After `{% raw %}`: everything up to `{% endraw %}` is text.
  absl::Status LexRaw(size_t open, bool strip_first) {
    tokens_.resize(tokens_.size() - 3);  // drop the raw tag itself
    size_t search = i_;
    while (true) {
      const size_t tag = src_.find("{%", search);
      if (tag == std::string::npos) return Error(open, "missing '{% endraw %}'");
      size_t k = tag + 2;
      const bool strip_before = k < src_.size() && src_[k] == '-';
      if (strip_before) ++k;
      while (k < src_.size() && IsSpace(src_[k])) ++k;
      if (src_.compare(k, 6, "endraw") != 0) {
        search = tag + 2;
        continue;
      }
      k += 6;
      while (k < src_.size() && IsSpace(src_[k])) ++k;
      raw_strip_after_ = k < src_.size() && src_[k] == '-';
      if (raw_strip_after_) ++k;
      if (src_.compare(k, 2, "%}") != 0) return Error(tag, "malformed endraw tag");
      std::string text = src_.substr(i_, tag - i_);
      if (strip_first) text.erase(0, std::min(text.size(), text.find_first_not_of(" \t\n\r\f\v")));
      if (strip_before) {
        while (!text.empty() && IsSpace(text.back())) text.pop_back();
      }
      if (!text.empty()) Emit(Token::Kind::kText, std::move(text), PosAt(i_));
      i_ = k + 2;
      return absl::OkStatus();
    }
  }

  const std::string& src_;
  size_t i_ = 0;
  std::vector<Token> tokens_;
  bool raw_strip_after_ = false;
  size_t pos_off_ = 0;
  Pos pos_;
};

}  // namespace

absl::StatusOr<std::vector<Token>> LexTemplate(const std::string& source) {
  // Like jinja2's Environment defaults: line endings become "\n" and one
  // trailing newline is dropped (keep_trailing_newline=False).
  std::string normalized;
  normalized.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      normalized += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      normalized += source[i];
    }
  }
  if (!normalized.empty() && normalized.back() == '\n') normalized.pop_back();
  return Lexer(normalized).Run();
}

}  // namespace tpserve::text::jinja
