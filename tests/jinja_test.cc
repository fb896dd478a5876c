// The Jinja interpreter's rules one at a time: whitespace control, Python
// semantics the templates lean on, and errors that name the line instead of
// crashing or running away.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "coordinator/jinja/template.h"

namespace shardlm::testing {
namespace {

using jinja::Dict;
using jinja::Value;
using ::testing::HasSubstr;

absl::StatusOr<std::string> Render(const std::string& source, const Dict& vars = {},
                                   jinja::RenderOptions options = {}) {
  absl::StatusOr<jinja::Template> t = jinja::Template::Parse(source);
  if (!t.ok()) return t.status();
  return t->Render(vars, options);
}

std::string RenderOk(const std::string& source, const Dict& vars = {}) {
  absl::StatusOr<std::string> r = Render(source, vars);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : "";
}

TEST(JinjaTest, TrimAndLstripBlocks) {
  // trim_blocks eats the newline after %}, lstrip_blocks the indentation
  // before {% (not before {{), one trailing newline of the source goes.
  EXPECT_EQ(RenderOk("{% if true %}\n  a\n  {% endif %}\n  {{ 'b' }}\n"), "  a\n  b");
  EXPECT_EQ(RenderOk("x  {%- if true -%}  \n y{% endif %} {{- ' z ' -}} \n"), "xy z ");
  EXPECT_EQ(RenderOk("a\r\nb{# c #}\nd"), "a\nbd");
  EXPECT_EQ(RenderOk("  {#- note #}\n{{ 1 }}"), "1");
}

TEST(JinjaTest, PythonValueSemantics) {
  EXPECT_EQ(RenderOk("{{ [1, 'a', none, true, 2.50] }}"), "[1, 'a', None, True, 2.5]");
  EXPECT_EQ(RenderOk("{{ 'abc'[::-1] }}{{ 'héllo'[1] }}{{ [1,2,3][-1] }}{{ 'xyz'[:-1] }}"),
            "cbaé3xy");
  EXPECT_EQ(
      RenderOk(
          "{{ '\u3000 x \u00a0'|trim }}|{{ ' a b '.split() }}|{{ 'a</t>b'.split('</t>')[0] }}"),
      "x|['a', 'b']|a");
  EXPECT_EQ(RenderOk("{{ 'a' + 'x ' | trim + 'b' }}{{ 7 // 2 }}{{ -7 % 3 }}{{ 1 / 2 }}"),
            "axb320.5");
  EXPECT_EQ(RenderOk("{{ {'a': [1, {'b': 2}]} == {'a': [1, {'b': 2}]} }}{{ 'b' in {'b': 1} }}"),
            "TrueTrue");
  EXPECT_EQ(RenderOk("{{ {'k': 'é\"', 'n': [], 'f': 1.0} | tojson }}"),
            "{\"k\": \"é\\\"\", \"n\": [], \"f\": 1.0}");
  EXPECT_EQ(RenderOk("{{ {'a': [1]} | tojson(indent=2) }}"), "{\n  \"a\": [\n    1\n  ]\n}");
  EXPECT_EQ(
      RenderOk(
          "{{ x is iterable }}{{ x is defined }}{{ x | length }}{% for i in x %}!{% endfor %}"),
      "TrueFalse0");
}

TEST(JinjaTest, LoopsNamespacesAndMacros) {
  EXPECT_EQ(RenderOk("{% for x in [1, 2, 3, 4] if x is even %}{{ loop.index0 }}{{ x }}"
                     "{{ loop.last }}{% endfor %}"),
            "02False14True");
  EXPECT_EQ(RenderOk("{% set ns = namespace(n=0) %}{% for x in 'abc' %}{% set ns.n = ns.n + 1 %}"
                     "{% set local = 1 %}{% endfor %}{{ ns.n }}{{ local is defined }}"),
            "3False");
  EXPECT_EQ(
      RenderOk("{% macro f(a, b='d') %}{{ a }}{{ b }}{% endmacro %}{{ f(1) }}{{ f(2, b=3) }}"),
      "1d23");
  EXPECT_EQ(RenderOk("{% for k, v in {'a': 1, 'b': 2}|items %}{{ k }}={{ v }};{% endfor %}"),
            "a=1;b=2;");
  EXPECT_EQ(RenderOk("{% for x in [1, 2, 3] %}{% if x == 2 %}{% break %}{% endif %}{{ x }}"
                     "{% endfor %}"),
            "1");
}

TEST(JinjaTest, ErrorsNameTheLine) {
  absl::StatusOr<std::string> r = Render("a\n{{ raise_exception('no way') }}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("chat template line 2: no way"));

  r = Render("\n\n{% if x %}\n{% include 'other' %}{% endif %}");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("line 4"));
  EXPECT_THAT(r.status().message(), HasSubstr("include"));

  r = Render("{{ missing + 'x' }}");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("'missing' is undefined"));

  r = Render("{{ 'a' ");
  EXPECT_FALSE(r.ok());
  r = Render("{% for x in y %}");
  EXPECT_FALSE(r.ok());
  r = Render("{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}");
  EXPECT_FALSE(r.ok());
}

TEST(JinjaTest, RunawayTemplatesAreBounded) {
  absl::StatusOr<std::string> r = Render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);

  r = Render(
      "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
      "{% endfor %}{% endfor %}{% endfor %}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(JinjaTest, HugeExpressionsAreRefusedNotOverflowed) {
  // Long operator chains deepen the tree like nesting does: refused at
  // parse time, whatever the operator.
  for (const char* op : {" + ", " ~ ", " and ", " or ", " == ", "|trim", ".a", "[0]"}) {
    std::string chain = "{{ x";
    for (int i = 0; i < 20000; ++i) chain += std::string(op) + (op[0] == ' ' ? "x" : "");
    absl::StatusOr<std::string> r = Render(chain + " }}");
    if (std::string(op) == " == ") {
      // A comparison chain is one flat node: fine at any length.
      EXPECT_TRUE(r.ok()) << r.status();
      continue;
    }
    ASSERT_FALSE(r.ok()) << op;
    EXPECT_THAT(r.status().message(), HasSubstr("too long or nested too deeply")) << op;
  }
  absl::StatusOr<std::string> r = Render("{{ " + std::string(100000, '-') + "1 }}");
  EXPECT_FALSE(r.ok());
  std::string conditional = "{{ ";
  for (int i = 0; i < 20000; ++i) conditional += "1 if x else ";
  r = Render(conditional + "2 }}");
  EXPECT_FALSE(r.ok());
}

TEST(JinjaTest, IntegerOverflowIsAnErrorNotUndefinedBehaviour) {
  for (const char* expr : {"9223372036854775807 + 1", "-9223372036854775807 - 2", "2 ** 64",
                           "3037000500 * 3037000500", "1e300|int"}) {
    absl::StatusOr<std::string> r = Render(std::string("{{ ") + expr + " }}");
    EXPECT_FALSE(r.ok()) << expr << " gave " << *r;
  }
  EXPECT_EQ(
      RenderOk("{{ 2 ** 62 }} {{ (-1) ** 99 }} {{ 7 // -2 }} {{ [1, 2][::9223372036854775807] }}"),
      "4611686018427387904 -1 -4 [1]");
  EXPECT_EQ(RenderOk("{{ (1, 2) == [1, 2] }}"), "False");
}

TEST(JinjaTest, CallerDoesNotOutliveItsBlock) {
  // caller() renders in the call site's scope, gone once the call returns:
  // a kept caller() is refused (Jinja2 would still render it), never a
  // dangling scope.
  absl::StatusOr<std::string> r = Render(
      "{% set ns = namespace() %}{% macro keep() %}{% set ns.c = caller %}{% endmacro %}"
      "{% call keep() %}x{% endcall %}{{ ns.c() }}");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("caller() used after its {% call %} block"));
}

TEST(JinjaTest, StrftimeNowUsesTheInjectedClock) {
  jinja::RenderOptions options;
  options.now.tm_year = 2026 - 1900;
  options.now.tm_mon = 6;
  options.now.tm_mday = 26;
  absl::StatusOr<std::string> r = Render("{{ strftime_now('%d %b %Y') }}", {}, options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "26 Jul 2026");
}

}  // namespace
}  // namespace shardlm::testing
