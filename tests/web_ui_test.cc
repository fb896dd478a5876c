// The chat page's response (coordinator/web_ui.h): embedded bytes, a nonce
// CSP that matches every inline <script>/<style>, headers, no markup sinks
// for model text; and GET /v1/pipeline's document from a pipeline of fake
// stages. The page in a real browser: tests/webui.
#include "coordinator/web_ui.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "coordinator/pipeline.h"
#include "tests/fake_stage.h"

namespace shardlm {
namespace {

using ::shardlm::testing::FakeStage;

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const std::string* HeaderOf(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::string NonceOf(const HttpResponse& r) {
  const std::string* csp = HeaderOf(r, "Content-Security-Policy");
  if (csp == nullptr) return "";
  std::smatch m;
  if (!std::regex_search(*csp, m, std::regex("script-src 'nonce-([A-Za-z0-9+/=]+)'"))) return "";
  return m[1];
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(WebUiTest, PageIsEmbedded) {
  const std::string page(ChatPageSource());
  EXPECT_THAT(page, StartsWith("<!DOCTYPE html>"));
  EXPECT_THAT(page, HasSubstr("</html>"));
  EXPECT_THAT(page, HasSubstr("/v1/chat/completions"));
}

TEST(WebUiTest, EveryInlineScriptAndStyleCarriesTheHeadersNonce) {
  const HttpResponse r = ChatPageResponse();
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.content_type, StartsWith("text/html"));
  const std::string nonce = NonceOf(r);
  ASSERT_EQ(nonce.size(), 24u) << "128 bits, base64";
  EXPECT_THAT(*HeaderOf(r, "Content-Security-Policy"),
              HasSubstr("style-src 'nonce-" + nonce + "'"));
  EXPECT_THAT(*HeaderOf(r, "Content-Security-Policy"), HasSubstr("default-src 'none'"));
  EXPECT_THAT(r.body, Not(HasSubstr("{{CSP_NONCE}}")));
  EXPECT_GE(Count(r.body, "<script"), 1u);
  EXPECT_EQ(Count(r.body, "<script"), Count(r.body, "<script nonce=\"" + nonce + "\">"));
  EXPECT_EQ(Count(r.body, "<style"), Count(r.body, "<style nonce=\"" + nonce + "\">"));
  ASSERT_NE(HeaderOf(r, "Cache-Control"), nullptr);
  EXPECT_EQ(*HeaderOf(r, "Cache-Control"), "no-store");
  ASSERT_NE(HeaderOf(r, "X-Frame-Options"), nullptr);
  ASSERT_NE(HeaderOf(r, "X-Content-Type-Options"), nullptr);
}

TEST(WebUiTest, EachResponseHasAFreshNonce) {
  EXPECT_NE(NonceOf(ChatPageResponse()), NonceOf(ChatPageResponse()));
}

// Model output must reach the DOM as text: the page uses no markup sink and
// loads nothing from elsewhere.
TEST(WebUiTest, PageHasNoMarkupSinksOrExternalResources) {
  const std::string page(ChatPageSource());
  for (const char* sink :
       {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
        " src=", "href=\"http", "url(http", "@import"}) {
    EXPECT_THAT(page, Not(HasSubstr(sink))) << sink;
  }
}

TEST(WebUiTest, PipelineJsonListsEveryReplicaWithItsHealth) {
  std::vector<std::vector<std::shared_ptr<Stage>>> ranges(2);
  ranges[0].push_back(std::make_shared<FakeStage>(0, 4, 6, "worker a:1 (layers 0:4)"));
  ranges[1].push_back(std::make_shared<FakeStage>(4, 6, 6, "worker b:1 (layers 4:6)"));
  ranges[1].push_back(std::make_shared<FakeStage>(4, 6, 6, "worker \xff:2"));  // not UTF-8
  auto pipeline = Pipeline::Create(std::move(ranges));
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  (*pipeline)->SetHealthy(1, 1, false);
  const nlohmann::json j =
      PipelineJson(**pipeline, "tiny", "chatml (the model has no chat template)");
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["n_ctx"], 128);
  EXPECT_EQ(j["n_layer"], 6);
  EXPECT_EQ(j["chat_template"], "chatml (the model has no chat template)");
  ASSERT_EQ(j["stages"].size(), 3u);
  EXPECT_EQ(j["stages"][0]["address"], "worker a:1 (layers 0:4)");
  EXPECT_EQ(j["stages"][0]["first_layer"], 0);
  EXPECT_EQ(j["stages"][0]["last_layer"], 4);
  EXPECT_EQ(j["stages"][1]["healthy"], true);
  EXPECT_EQ(j["stages"][2]["replica"], 1);
  EXPECT_EQ(j["stages"][2]["healthy"], false);
  EXPECT_NO_THROW((void)j.dump()) << "strings are valid UTF-8";
}

}  // namespace
}  // namespace shardlm
