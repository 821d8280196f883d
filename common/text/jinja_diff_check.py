#!/usr/bin/env python3
"""Differential check of tpserve's Jinja interpreter against Python's jinja2 (configured as transformers
configures it: sandboxed, trim_blocks, lstrip_blocks, loopcontrols, its tojson). Needs `pip install jinja2`.

    bazel build //common/text:jinja_render
    python3 common/text/jinja_diff_check.py bazel-bin/common/text/jinja_render

Known, accepted differences are listed in KNOWN and reported separately.
"""
import json
import subprocess
import sys
import tempfile

from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


V1 = {"x": [1, 2, 3], "s": "  Hello World\n", "d": {"b": 1, "a": [1, {"c": None}]}, "n": None, "t": True,
     "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<think>\nhm\n</think>\n\nok"}]}
V2 = {"x": [3, 1, 2], "s": "a,b,,c", "d": {"b": 1, "a": 2}, "n": None, "t": True, "f": 1.5, "e": "", "u": "中文é",
     "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]}
T1 = [
 "{% for m in msgs %}\n  {{ m.role }}\n{% endfor %}\n",
 "a\n  {%- if t %}\n    b\n  {%- endif %}\nc",
 "{% if t %}  x  {% endif %}|",
 "  {% if t %}\n  y\n  {% endif %}\n",
 "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ d }}|{{ x }}|{{ n }}|{{ t }}",
 "{{ s.strip() }}|{{ s.split() }}|{{ s.lstrip() }}|{{ s|trim }}|{{ s.upper() }}|{{ s|length }}",
 "{{ msgs[1].content.split('</think>')[-1].lstrip('\\n') }}|{{ msgs[1].content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}",
 "{% set ns = namespace(k=0) %}{% for i in x[::-1] %}{% set ns.k = ns.k + i %}{{ loop.index0 }}{{ loop.revindex }}{% endfor %}{{ ns.k }}",
 "{{ 7 / 2 }} {{ 7 // 2 }} {{ -7 % 3 }} {{ 2 ** 0.5 }} {{ 1e3 }} {{ 0.1 + 0.2 }} {{ 10 / 5 }}",
 "{{ x|join(', ') }} {{ x|first }} {{ x|last }} {{ x|sum }} {{ x|max }} {{ x|list }} {{ x|reverse|list }}",
 "{% for k, v in d.items() %}{{ k }}:{{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
 "{{ 'a' if n is none else 'b' }}{{ n is defined }}{{ zz is defined }}{{ zz|default('D') }}{{ n|default('E') }}",
 "{#- c -#}\n  {{- 'q' -}}\n  {# c2 #}\n  r",
 "{% macro m(a, b='B') -%}\n  [{{ a }}{{ b }}]\n{%- endmacro %}\n{{ m(1) }}{{ m(2, b=3) }}",
 "{{ 'it\\'s' }} {{ \"q\\\"\" }} {{ ['a', \"b'c\", 'd\"e'] }} {{ {'k': 'v'} }}",
 "{% for i in range(5) %}{% if i is odd %}{% continue %}{% endif %}{{ i }}{% if i >= 2 %}{% break %}{% endif %}{% endfor %}",
 "{{ x|map('string')|join('-') }} {{ msgs|map(attribute='role')|list }} {{ msgs|selectattr('role', 'equalto', 'user')|list|length }}",
 "{{ 'abc'[1:] }}{{ 'abc'[-1] }}{{ x[1:] }}{{ x[:-1] }}{{ x[5:] }}",
 "{% set a = [1, 2] + [3] %}{{ a }}{% set b = 'x' ~ 1 ~ true %}{{ b }}",
 "text {{ '{{' }} more",
 "{%- for m in msgs -%}\n{{ m.content|tojson }}\n{%- endfor -%}",
 "{{ '%s' }} {{ 'x'|capitalize }} {{ 'hello world'|title }} {{ 'A B'|lower }}",
 "{{ 1 < 2 and 'y' or 'n' }} {{ not t }} {{ 2 in x }} {{ 'ell' in 'hello' }} {{ 5 not in x }}",
 "{{ d.a[1].c }} {{ d['a'][0] }} {{ d.get('zz', 'dflt') }} {{ d.keys()|list }}",
 "\n{% if t %}\n\n{% endif %}\n\n",
 "{% for m in msgs %}{% if m.role == 'user' %}U{% elif m.role == 'assistant' %}A{% else %}?{% endif %}{% endfor %}",
 "    {%+ if t %}kept{% endif %}",
 "{{ 3.0 }} {{ 1.5e-7 }} {{ 12345678901234567.0 }} {{ -0.0 }} {{ 100|float }} {{ '7'|int * 2 }} {{ 2.7|int }}",
 "{{ x|tojson }} {{ 'é\\n\"'|tojson }} {{ none|tojson }} {{ 1.0|tojson }} {{ true|tojson }}",
 "{% set c %}\n  inside {{ 1 }}\n{% endset %}[{{ c }}]",
]
T2 = [
 "{{ x|sort }} {{ x|sort(reverse=true) }} {{ d|dictsort }} {{ x|min }} {{ [1, 1, 2]|unique|list }}",
 "{{ s.split(',') }} {{ s.split(',', 1) }} {{ s.rsplit(',', 1) }} {{ s.replace(',', ';') }} {{ s.count(',') }}",
 "{{ u|length }} {{ u[0] }} {{ u[::-1] }} {{ u|upper }} {{ u.startswith('中') }}",
 "{{ e|default('x') }} {{ e|default('x', true) }} {{ n|default('y') }} {{ e is string }} {{ f is float }} {{ 1 is integer }}",
 "{{ tools|tojson }}",
 "{% for tool in tools %}\n    {{- '\\n' }}\n    {{- tool | tojson }}\n{%- endfor %}",
 "{{ f|round }} {{ 2.567|round(2) }} {{ f|int }} {{ -f|abs }} {{ 3|float }} {{ '3.5'|float }}",
 "{{ 'a b  c'.split(' ') }} {{ ' x '.rstrip() }}| {{ 'xyx'.strip('x') }} {{ 'Ab'.swapcase is defined }}",
 "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %} {% for i in x if i > 1 %}{{ loop.index }}/{{ loop.length }} {% endfor %}",
 "{{ x|select('odd')|list }} {{ x|reject('odd')|list }} {{ x|map('string')|list }}",
 "{{ 'yes' if e else 'no' }} {{ e or 'fallback' }} {{ t and 'T' }} {{ n or e or 0 }}",
 "{% if x|length > 2 and d.a == 2 %}ok{% endif %} {{ x[0] == 3 }} {{ x != [3, 1, 2] }}",
 "{{ '{:}'.format(1) if false else 'f' }} {{ '{} {}'.format('a', 2) }}",
 "{{ d.items()|list }} {{ d.values()|list }} {{ d|length }} {{ d|list }}",
 "{% set l = x %}{% for v in l %}{{ loop.previtem }}-{{ loop.nextitem }} {% endfor %}",
 "{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }}",
 "{{ (1, 2) }} {{ [] }} {{ {} }} {{ '' }} {{ none }} {{ [none, true, 1.0, 'a'] }}",
 "{{ 'a\\tb' }}|{{ ['a\\tb', 'c\\\\d'] }}",
 "{{ x|join }} {{ 'abc'|list }} {{ 'abc'|reverse }} {{ x|first + x|last }}",
 "{% raw %}{{ x }}{% endraw %}",
 "  {%- raw -%}  {{ y }}  {%- endraw -%}  !",
 "{{ 1 if t }}{{ 2 if not t }}|",
 "{{ 10 % 3 }} {{ -10 // 3 }} {{ 2 ** 10 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}",
 "{{ 'abc' < 'abd' }} {{ 2 >= 2.0 }} {{ 1 == 1.0 }} {{ 1 < 2 < 3 > 2 }}",
 "{% if true %}\n\tindented\n{% endif %}",
 "{{ 'line1\\nline2'|indent(4) }}|{{ 'l1\\nl2'|indent(2, true) }}",
]
# Case mapping is ASCII-only here; str methods cannot be used as attribute values.
KNOWN = {"{{ u|length }} {{ u[0] }} {{ u[::-1] }} {{ u|upper }} {{ u.startswith('中') }}",
         "{{ 'a b  c'.split(' ') }} {{ ' x '.rstrip() }}| {{ 'xyx'.strip('x') }} {{ 'Ab'.swapcase is defined }}"}


def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    cases = [{"t": t, "v": V1} for t in T1] + [{"t": t, "v": V2} for t in T2]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cases, f)
    ours = json.loads(subprocess.run([sys.argv[1], f.name], capture_output=True, text=True, check=True).stdout)
    bad = known = 0
    for c, o in zip(cases, ours):
        try:
            ref = env.from_string(c["t"]).render(**c["v"])
        except Exception:  # noqa: BLE001 - any jinja2 error counts as an error
            ref = None
        if ref == o or (ref is None and o.startswith("ERR")):
            continue
        if c["t"] in KNOWN:
            known += 1
            continue
        bad += 1
        print("MISMATCH", repr(c["t"]), "\n  jinja2 ", repr(ref), "\n  tpserve", repr(o))
    print(f"{len(cases)} cases, {bad} mismatches, {known} known differences")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
