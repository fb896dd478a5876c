// Every real chat template in ../shared/templates against every
// conversation of cases.json: the interpreter's render must equal, byte for
// byte, what Python's Jinja2 rendered under HF's apply_chat_template
// conventions (expected/STEM.CASE.txt), and a pair Jinja2 refused
// (expected/index.json "error") must fail — with the template's own message
// when raise_exception() refused it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <string>

#include "coordinator/jinja/template.h"
#include "nlohmann/json.hpp"
#include "tests/test_data.h"

namespace shardlm::testing {
namespace {

using jinja::Dict;
using jinja::Value;
using json = nlohmann::ordered_json;

// strftime_now's pinned date in the expectations: 26 Jul 2026 00:00:00.
std::tm PinnedNow() {
  std::tm t = {};
  t.tm_year = 2026 - 1900;
  t.tm_mon = 6;
  t.tm_mday = 26;
  t.tm_wday = 0;  // a Sunday
  t.tm_yday = 206;
  return t;
}

// The variables render_template.py passes: messages, add_generation_prompt,
// tools only when the case has them, bos/eos only when not null, then the
// case's template_kwargs.
Dict Variables(const json& c, const json& tokens) {
  Dict vars;
  vars.Set("messages", Value::FromJson(c["messages"]));
  vars.Set("add_generation_prompt", Value::Bool(c["add_generation_prompt"].get<bool>()));
  if (c.contains("tools")) vars.Set("tools", Value::FromJson(c["tools"]));
  for (const char* t : {"bos_token", "eos_token"}) {
    if (tokens.contains(t) && tokens[t].is_string()) vars.Set(t, Value::String(tokens[t]));
  }
  if (c.contains("template_kwargs")) {
    for (const auto& [k, v] : c["template_kwargs"].items()) vars.Set(k, Value::FromJson(v));
  }
  return vars;
}

// Where two renders part, for a readable failure.
std::string FirstDifference(const std::string& got, const std::string& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  const size_t from = i > 40 ? i - 40 : 0;
  return "byte " + std::to_string(i) + ": got \"" + got.substr(from, 80) + "\"\n want \"" +
         want.substr(from, 80) + "\"";
}

TEST(JinjaTemplatesTest, EveryPairRendersAsJinja2Does) {
  const std::string dir = TestDataPath("templates");
  const json index = json::parse(ReadFileOrDie(dir + "/expected/index.json"));
  const json cases = json::parse(ReadFileOrDie(dir + "/cases.json"));
  std::map<std::string, json> case_by_id;
  for (const json& c : cases) case_by_id[c["id"].get<std::string>()] = c;
  std::map<std::string, jinja::Template> templates;
  std::map<std::string, std::pair<int, int>> passed;  // stem -> (passed, total)
  jinja::RenderOptions options;
  options.now = PinnedNow();

  for (const json& pair : index["pairs"]) {
    const std::string stem = pair["template"];
    const std::string id = pair["case"];
    SCOPED_TRACE(stem + " x " + id);
    const json& info = index["templates"][stem];
    if (!templates.count(stem)) {
      absl::StatusOr<jinja::Template> t =
          jinja::Template::Parse(ReadFileOrDie(dir + "/" + info["file"].get<std::string>()));
      ASSERT_TRUE(t.ok()) << t.status();
      templates.emplace(stem, *std::move(t));
    }
    ASSERT_TRUE(case_by_id.count(id));
    absl::StatusOr<std::string> got =
        templates.at(stem).Render(Variables(case_by_id[id], info), options);
    ++passed[stem].second;
    if (pair.contains("error")) {
      const json& err = pair["error"];
      EXPECT_FALSE(got.ok()) << "Jinja2 refused with " << err["message"];
      if (got.ok()) continue;
      if (err["raised_by_template"].get<bool>()) {
        EXPECT_THAT(std::string(got.status().message()),
                    ::testing::HasSubstr(err["message"].get<std::string>()));
        if (got.status().message().find(err["message"].get<std::string>()) == std::string::npos) {
          continue;
        }
      }
      EXPECT_THAT(std::string(got.status().message()), ::testing::HasSubstr("chat template line"));
      ++passed[stem].first;
      continue;
    }
    const std::string want = ReadFileOrDie(dir + "/expected/" + pair["file"].get<std::string>());
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok()) continue;
    EXPECT_TRUE(*got == want) << FirstDifference(*got, want);
    if (*got == want) ++passed[stem].first;
  }
  int total = 0, ok = 0;
  for (const auto& [stem, counts] : passed) {
    std::cout << "  " << stem << ": " << counts.first << "/" << counts.second << "\n";
    ok += counts.first;
    total += counts.second;
  }
  std::cout << "  all: " << ok << "/" << total << " pairs as Jinja2\n";
  EXPECT_EQ(total, 144);
}

}  // namespace
}  // namespace shardlm::testing
