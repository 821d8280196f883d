// Developer tool: renders a JSON list of {"t": template, "v": variables} with
// tpserve's Jinja interpreter and prints a JSON list of results ("ERR: ..." on
// error). jinja_diff_check.py compares it with Python's jinja2.
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/text/jinja.h"

int main(int argc, char** argv) {
  using tpserve::text::jinja::FromJson;
  using tpserve::text::jinja::Template;
  if (argc != 2) {
    std::cerr << "usage: jinja_render CASES.json\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  std::stringstream ss;
  ss << in.rdbuf();
  const auto cases = nlohmann::ordered_json::parse(ss.str(), nullptr, false);
  if (cases.is_discarded() || !cases.is_array()) {
    std::cerr << "cases must be a JSON array\n";
    return 2;
  }
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& c : cases) {
    auto t = Template::Parse(c.value("t", ""));
    auto v = FromJson(c.value("v", nlohmann::ordered_json::object()));
    if (!t.ok() || !v.ok() || !v->is_dict()) {
      out.push_back("ERR: " + std::string(!t.ok() ? t.status().message() : "bad variables"));
      continue;
    }
    auto r = t->Render(v->dict());
    out.push_back(r.ok() ? *r : "ERR: " + std::string(r.status().message()));
  }
  std::cout << out.dump() << "\n";
  return 0;
}
