// Snippets exercising one Jinja2 rule each, with the text Python's Jinja2
// (3.1, HF's environment: ImmutableSandboxedEnvironment, trim_blocks,
// lstrip_blocks, loopcontrols, HF's tojson, strftime_now pinned to
// 2026-07-26) renders for them — or, for "error", that it raises. Generated
// once by rendering each snippet with Jinja2; the interpreter must agree.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordinator/jinja/template.h"
#include "nlohmann/json.hpp"

namespace shardlm::testing {
namespace {

using jinja::Value;

struct Case {
  const char* source;
  const char* want;  // the render, or nullptr: Jinja2 raises
};

// The variables every snippet sees.
constexpr char kVariables[] =
    R"J({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": [1, 2.5, null, true]}}}]}], "d": {"b": 2, "a": 1, "items": 5}, "s": "  Hello World　 ", "n": 7, "f": 2.5, "l": [3, 1, 2], "e": "", "z": null, "t": true})J";

const std::vector<Case>& Cases() {
  static const auto* cases = new std::vector<Case>{
      {R"J({{ d['items'] }})J", R"J(5)J"},
      {R"J({{ d.keys() | list }})J", R"J(['b', 'a', 'items'])J"},
      {R"J({{ d.get('x', 'no') }}{{ d.get('a') }})J", R"J(no1)J"},
      {R"J({{ s|trim }}|{{ s.strip() }}|{{ s.split() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|)J",
       R"J(Hello World|Hello World|['Hello', 'World']|Hello World　 |  Hello World|)J"},
      {R"J({{ s.upper() }}{{ s.lower() }}{{ s|title }}{{ 'hello world'|capitalize }})J",
       R"J(  HELLO WORLD　   hello world　   Hello World　 Hello world)J"},
      {R"J({{ l|sort }})J", R"J([1, 2, 3])J"},
      {R"J({{ l|first }}{{ l|last }}{{ l|length }}{{ l|reverse|list }})J", R"J(323[2, 1, 3])J"},
      {R"J({{ l|join(', ') }}{{ l|map('string')|join }})J", R"J(3, 1, 2312)J"},
      {R"J({{ messages|map(attribute='role')|join(',') }})J", R"J(system,user,assistant)J"},
      {R"J({{ messages|selectattr('role','equalto','user')|list|length }}{{ messages|rejectattr('role','in',['user'])|map(attribute='role')|list }})J",
       R"J(1['system', 'assistant'])J"},
      {R"J({{ n / 2 }} {{ n // 2 }} {{ n % 3 }} {{ -n // 2 }} {{ -n % 3 }} {{ n ** 2 }} {{ f * 2 }} {{ 10 / 4 }} {{ 1e20 }} {{ 0.1 + 0.2 }} {{ 1/3 }})J",
       R"J(3.5 3 1 -4 2 49 5.0 2.5 1e+20 0.30000000000000004 0.3333333333333333)J"},
      {R"J({{ 'a' ~ n ~ z ~ t ~ f }})J", R"J(a7NoneTrue2.5)J"},
      {R"J({{ z }}{{ t }}{{ e }}{{ undefined_var }})J", R"J(NoneTrue)J"},
      {R"J({{ [1,'a',none,true,{'k':[1]}] }})J", R"J([1, 'a', None, True, {'k': [1]}])J"},
      {R"J({{ ('a',) }}{{ (1,2) }})J", R"J(('a',)(1, 2))J"},
      {R"J({{ "it's" }} {{ ["it's", 'say "x"'] }})J", R"J(it's ["it's", 'say "x"'])J"},
      {R"J({{ messages[2].tool_calls[0].function.arguments|tojson }})J",
       R"J({"a": 1, "b": [1, 2.5, null, true]})J"},
      {R"J({{ messages[2].tool_calls[0].function.arguments|tojson(indent=2) }})J",
       R"J({
  "a": 1,
  "b": [
    1,
    2.5,
    null,
    true
  ]
})J"},
      {R"J({{ {'a': {}, 'b': []}|tojson(indent=4) }})J",
       R"J({
    "a": {},
    "b": []
})J"},
      {R"J({{ 'é"\n\t\u0001'|tojson }})J", R"J("é\"\n\t\u0001")J"},
      {R"J({% for m in messages %}{{ loop.index }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.cycle('a','b') }}|{% endfor %})J",
       R"J(13TrueFalse3a|22FalseFalse3b|31FalseTrue3a|)J"},
      {R"J({% for m in messages if m.role != 'system' %}{{ loop.index0 }}{{ m.role }}{% else %}none{% endfor %})J",
       R"J(0user1assistant)J"},
      {R"J({% for m in [] %}x{% else %}empty{% endfor %})J", R"J(empty)J"},
      {R"J({% for k, v in d.items() %}{{ k }}={{ v }} {% endfor %})J", R"J(b=2 a=1 items=5 )J"},
      {R"J({% for k in d %}{{ k }}{% endfor %})J", R"J(baitems)J"},
      {R"J({% for c in 'héllo' %}{{ c }}.{% endfor %})J", R"J(h.é.l.l.o.)J"},
      {R"J({% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }})J", R"J(2)J"},
      {R"J({% set ns = namespace(a=1) %}{% set ns.b = 2 %}{{ ns.a }}{{ ns.b }}{{ ns.c is defined }})J",
       R"J(12False)J"},
      {R"J({% macro m(a, b=2, c='x') %}[{{ a }}{{ b }}{{ c }}]{% endmacro %}{{ m(1) }}{{ m(1, 3) }}{{ m(1, c='y') }}{{ m() }})J",
       R"J([12x][13x][12y][2x])J"},
      {R"J({% set y %}block {{ n }}{% endset %}{{ y }}|)J", R"J(block 7|)J"},
      {R"J({{ 'abc' if n > 5 else 'def' }}{{ 'x' if false }}|)J", R"J(abc|)J"},
      {R"J({{ n > 5 and 'yes' or 'no' }}{{ e or 'empty' }}{{ z and 1 }})J", R"J(yesemptyNone)J"},
      {R"J({{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}{{ 'a' < 'b' }}{{ [1] == [1] }}{{ 1 == 1.0 }}{{ true == 1 }})J",
       R"J(TrueFalseTrueTrueTrueTrue)J"},
      {R"J({{ 'ell' in 'hello' }}{{ 2 in l }}{{ 'a' in d }}{{ 'q' not in d }})J",
       R"J(TrueTrueTrueTrue)J"},
      {R"J({{ n is odd }}{{ n is even }}{{ n is divisibleby 7 }}{{ n is number }}{{ f is float }}{{ n is integer }}{{ t is boolean }}{{ z is none }}{{ s is string }}{{ d is mapping }}{{ l is sequence }}{{ l is iterable }}{{ n is iterable }})J",
       R"J(TrueFalseTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueFalse)J"},
      {R"J({{ x is defined }}{{ x is undefined }}{{ d.q is defined }}{{ l[10] is defined }})J",
       R"J(FalseTrueFalseFalse)J"},
      {R"J({{ s[2:7] }}{{ s[::-1] }}{{ l[::-1] }}{{ l[-1] }}{{ l[1:] }}{{ l[:-1] }}{{ 'abcdef'[1:5:2] }}{{ 'abcdef'[-2:] }})J",
       R"J(Hello 　dlroW olleH  [2, 1, 3]2[1, 2][3, 1]bdef)J"},
      {R"J({{ 'a,b,,c'.split(',') }}{{ 'a b  c'.split(' ') }}{{ 'a b c'.split(None, 1) }}{{ 'xxhixx'.strip('x') }})J",
       R"J(['a', 'b', '', 'c']['a', 'b', '', 'c']['a', 'b c']hi)J"},
      {R"J({{ 'hello'.startswith('he') }}{{ 'hello'.endswith(('x','lo')) }}{{ 'hello'.replace('l','L') }}{{ 'hello'.replace('l','L',1) }}{{ 'hello'.find('l') }}{{ 'hello'.count('l') }})J",
       R"J(TrueTrueheLLoheLlo22)J"},
      {R"J({{ 'x'|default('d') }}{{ undefined_v|default('d') }}{{ e|default('d', true) }}{{ z|default('d') }})J",
       R"J(xddNone)J"},
      {R"J({{ n|string }}{{ f|string }}{{ z|string }}{{ t|string }}{{ l|string }}{{ d|string }})J",
       R"J(72.5NoneTrue[3, 1, 2]{'b': 2, 'a': 1, 'items': 5})J"},
      {R"J({{ '3'|int + 1 }}{{ '2.5'|float }}{{ 'x'|int }}{{ 3.9|int }}{{ -3|abs }})J",
       R"J(42.5033)J"},
      {R"J({{ 'abc'|replace('b', 'B') }}{{ 'ABC'|lower }}{{ 'abc'|upper }}{{ '  x  '|trim }}|{{ 'xxaxx'|trim('x') }})J",
       R"J(aBcabcABCx|a)J"},
      {R"J({{ range(3)|list }}{{ range(1, 10, 3)|list }}{{ range(5, 0, -2)|list }})J",
       R"J([0, 1, 2][1, 4, 7][5, 3, 1])J"},
      {R"J({{ l|unique|list }}{{ [1,1,2]|unique|list }})J", R"J([3, 1, 2][1, 2])J"},
      {R"J({{ dict(a=1, b=2) }}{{ namespace(x=1).x }})J", R"J({'a': 1, 'b': 2}1)J"},
      {R"J({{ strftime_now('%Y-%m-%d %A %B %j %H:%M') }})J",
       R"J(2026-07-26 Sunday July 207 00:00)J"},
      {R"J({{ -(3) }}{{ +3 }}{{ - f }}{{ not t }}{{ not z }})J", R"J(-33-2.5FalseTrue)J"},
      {R"J({% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %})J",
       R"J(0134)J"},
      {R"J({{ raise_exception('boom') }})J", nullptr},
      {R"J({{ l + [4] }}{{ 'ab' * 3 }}{{ [0] * 3 }})J", R"J([3, 1, 2, 4]ababab[0, 0, 0])J"},
      {R"J({{ 1 + 'a' }})J", nullptr},
      {R"J({{ undefined_v + 1 }})J", nullptr},
      {R"J({{ undefined_v.attr }})J", nullptr},
      {R"J({{ z.attr }})J", R"J()J"},
      {R"J({{ l.attr }}x)J", R"J(x)J"},
      {R"J({{ messages[0]['role'] }}{{ messages[-1].content }}{{ messages[5] }}|)J",
       R"J(systemyo|)J"},
      {R"J(  {% if true %}
    x
  {% endif %}
  y
)J",
       R"J(    x
  y)J"},
      {R"J(a {#- c -#} b
{# c #}
c)J",
       R"J(ab
c)J"},
      {R"J({{ 'a' }}
{{ 'b' }}
)J",
       R"J(a
b)J"},
      {R"J({% if true -%}
  x  {%- endif %}
)J",
       R"J(x)J"},
      {R"J({{ "\x41\u00e9\n" }}{{ 'a' 'b' }})J",
       R"J(Aé
ab)J"},
      {R"J({{ 1_000 }}{{ 1.5e3 }}{{ 2e-5 }}{{ 123456789012345678 }}{{ 1e16 }}{{ 1e15 }}{{ 100.0 }})J",
       R"J(10001500.02e-051234567890123456781e+161000000000000000.0100.0)J"},
      {R"J({{ (messages|length - 1) }}{{ messages|length - 1 }}{{ 'x' + s|trim + 'y' }})J",
       R"J(22xHello Worldy)J"},
      {R"J(x
  {% if true %}a{% endif %}  
  {{ 'v' }}  {% if true %}b{% endif %}
)J",
       R"J(x
a  
  v  b)J"},
      {R"J(  {%+ if true %}a{% endif +%}
b)J",
       R"J(  a
b)J"},
      {R"J(		{# comment #}
next
   {#- c2 #}  after)J",
       R"J(next  after)J"},
      {R"J({% for i in [1,2] %}
  {{ i }}
{% endfor %}
)J",
       R"J(  1
  2
)J"},
      {R"J({% for i in [1,2] -%}
  {{ i }}
{%- endfor %})J",
       R"J(12)J"},
      {R"J(line1
    {%- set a = 1 -%}
    line2 {{ a }}
)J",
       R"J(line1line2 1)J"},
      {R"J({% if true %}   
  x{% endif %})J",
       R"J(   
  x)J"},
      {R"J({% macro f(x) -%}
  [{{ x }}]
{%- endmacro %}
{{ f(1) }}
{{ f(2) | trim }})J",
       R"J([1]
[2])J"},
      {R"J(a
bc
{% if true %}
d{% endif %}
)J",
       R"J(a
b
c
d)J"},
      {R"J({{ 'multi
line' }}
{% set x = 'a
' %}{{ x }}|)J",
       R"J(multi
line
a
|)J"},
      {R"J({% if true %}{{ 'k' }}{% elif false %}no{% else %}no{% endif %}

)J",
       R"J(k)J"},
      {R"J({%- for m in messages -%}
    <{{ m.role }}>
{%- endfor -%}
)J",
       R"J(<system><user><assistant>)J"},
      {R"J({{ messages|tojson }})J",
       R"J([{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": [1, 2.5, null, true]}}}]}])J"},
      {R"J({{ messages[2]|tojson(indent=2) }})J",
       R"J({
  "role": "assistant",
  "content": "yo",
  "tool_calls": [
    {
      "function": {
        "name": "f",
        "arguments": {
          "a": 1,
          "b": [
            1,
            2.5,
            null,
            true
          ]
        }
      }
    }
  ]
})J"},
      {R"J({{ {'k': 'v'}|items|list }})J", R"J([('k', 'v')])J"},
      {R"J({% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %})J", R"J(37)J"},
      {R"J({% for m in messages %}{{ loop.previtem.role if loop.previtem }}>{{ loop.nextitem.role if loop.nextitem }};{% endfor %})J",
       R"J(>user;system>assistant;user>;)J"},
      {R"J({% set a = [1,2] %}{% set b = a %}{{ a is sameas b }})J", R"J(True)J"},
      {R"J({{ 'Hello %s' }})J", R"J(Hello %s)J"},
      {R"J({{ '{}'.join(['a','b']) if false else ', '.join(['a','b']) }})J", R"J(a, b)J"},
      {R"J({{ d|length }}{{ s|length }}{{ 'héllo'|length }}{{ z|length if z else 0 }})J",
       R"J(31550)J"},
      {R"J({{ (1 if true else 2) + 3 }}{{ 1 if true else 2 + 3 }})J", R"J(41)J"},
      {R"J({{ not 1 == 2 }}{{ not 1 in [1] }}{{ - 2 ** 2 }}{{ 2 ** 3 ** 2 }})J",
       R"J(TrueFalse464)J"},
      {R"J({{ 'x' ~ 1 + 2 }})J", nullptr},
      {R"J({{ 1 + 2 ~ 'x' }})J", nullptr},
      {R"J({{ 2 * 3 ~ 4 }})J", R"J(64)J"},
      {R"J({{ [1,2,3][1:2] }}{{ 'abc'[5:] }}{{ 'abc'[-10:] }}{{ 'abc'[::-2] }})J", R"J([2]abcca)J"},
      {R"J({{ 'a b c'.split() }}{{ ' x '|trim }}|)J", R"J(['a', 'b', 'c']x|)J"},
      {R"J({{ [3,1,2]|sort(reverse=true) }}{{ ['b','A','c']|sort }}{{ messages|sort(attribute='role')|map(attribute='role')|list }})J",
       R"J([3, 2, 1]['A', 'b', 'c']['assistant', 'system', 'user'])J"},
      {R"J({{ {'a': 1}.a }}{{ {'a': 1}['a'] }}{{ {'a': 1}.get('b') }})J", R"J(11None)J"},
      {R"J({{ 3 // 0 }})J", nullptr},
      {R"J({{ [1] < [2] }}{{ [1, 2] < [1] }}{{ [1, 2] >= [1, 2] }}{{ [[1, 2], [1]] == [[1, 2], [1]] }})J",
       R"J(TrueFalseTrueTrue)J"},
      {R"J({{ none < 1 }})J", nullptr},
      {R"J({{ tools is defined }}{% for t in tools %}x{% endfor %}{{ tools|length }})J",
       R"J(False0)J"},
      {R"J({%- if messages[0]['role'] == 'system' -%}{{ messages[0]['content'] }}{%- endif -%})J",
       R"J(sys)J"},
      {R"J({{ 'a
b

c'|indent }}|{{ 'a
b'|indent(2, true) }}|{{ 'a

b
'|indent('> ', blank=true) }}|{{ ''|indent(first=true) }}|)J",
       R"J(a
    b

    c|  a
  b|a
> 
> b
> |    |)J"},
      {R"J({{ 'a
bc
'.splitlines() }}{{ ''.splitlines() }}{{ 'x

y'.splitlines() }})J",
       R"J(['a', 'b', 'c'][]['x', '', 'y'])J"},
      {R"J({% macro box(t) %}[{{ t }}:{{ caller() }}]{% endmacro %}{% call box('x') %}in {{ n }}{% endcall %})J",
       R"J([x:in 7])J"},
      {R"J({% macro each(l) %}{% for i in l %}{{ caller(i) }},{% endfor %}{% endmacro %}{% call(item) each([1, 2]) %}<{{ item }}>{% endcall %})J",
       R"J(<1>,<2>,)J"},
      {R"J({% macro m() %}{{ caller() }}{{ caller() }}{% endmacro %}{% for i in [1,2] %}{% call m() %}{{ i }}{% endcall %}{% endfor %})J",
       R"J(1122)J"},
  };
  return *cases;
}

TEST(JinjaSemanticsTest, EverySnippetRendersAsJinja2Does) {
  jinja::Dict vars;
  const auto json = nlohmann::ordered_json::parse(kVariables);
  for (const auto& [k, v] : json.items()) {
    vars.Set(k, Value::FromJson(v));
  }
  jinja::RenderOptions options;
  options.now.tm_year = 2026 - 1900;
  options.now.tm_mon = 6;
  options.now.tm_mday = 26;
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.source);
    absl::StatusOr<jinja::Template> t = jinja::Template::Parse(c.source);
    absl::StatusOr<std::string> got = t.ok() ? t->Render(vars, options) : t.status();
    if (c.want == nullptr) {
      EXPECT_FALSE(got.ok()) << "rendered \"" << *got << "\"; Jinja2 raises";
    } else {
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(*got, c.want);
    }
  }
}

}  // namespace
}  // namespace shardlm::testing
