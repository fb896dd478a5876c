// The chat prompt of a model that carries its own template, through both
// APIs with no template named: /v1/chat/completions (usage.prompt_tokens)
// and gRPC Chat (summary.prompt_tokens) must count exactly the tokens of
// Jinja2's rendering of that template (reference_prompt.mjs). run_e2e.sh
// starts `shardlm serve` with the model and passes SHARDLM_HTTP,
// SHARDLM_GRPC, SHARDLM_API_KEY, SHARDLM_E2E_MODEL, SHARDLM_TEST_DATA and
// SHARDLM_BIN; ctest passes SHARDLM_TEMPLATE_NAME (the templates/*.jinja the
// model carries).
import assert from "node:assert/strict";
import {execFileSync} from "node:child_process";
import {readFileSync} from "node:fs";
import {join} from "node:path";
import {test} from "node:test";
import OpenAI from "openai";
import {referencePromptTokens} from "./reference_prompt.mjs";
import {collectStream, shardlmClient} from "./shardlm_grpc.mjs";

const {SHARDLM_HTTP: http, SHARDLM_GRPC: grpcAddress, SHARDLM_API_KEY: apiKey,
       SHARDLM_E2E_MODEL: model, SHARDLM_TEMPLATE_NAME: templateName, SHARDLM_BIN: bin,
       SHARDLM_TEST_DATA: data} = process.env;
assert.ok(http && grpcAddress && apiKey && model && templateName && bin && data,
          "SHARDLM_HTTP, SHARDLM_GRPC, SHARDLM_API_KEY, SHARDLM_E2E_MODEL, SHARDLM_TEMPLATE_NAME, " +
          "SHARDLM_BIN and SHARDLM_TEST_DATA must be set");
const templateFile = join(data, "templates", `${templateName}.jinja`);

const client = new OpenAI({baseURL: `http://${http}/v1`, apiKey, maxRetries: 0, timeout: 60_000});
const grpcClient = shardlmClient(grpcAddress, apiKey);

// The conversations of ../shared/templates/cases.json that a client can send
// through these APIs: plain role/content messages, a generation prompt wanted.
const casesFile = join(data, "templates", "cases.json");
const cases = JSON.parse(readFileSync(casesFile, "utf8")).filter((c) =>
    c.add_generation_prompt && !("tools" in c) && !c.template_kwargs &&
    c.messages.every((m) => Object.keys(m).every((k) => k === "role" || k === "content")));

test("the model carries the template file the expectation is rendered from", () => {
  const info = JSON.parse(execFileSync(join(bin, "shardlm-inspect"), ["--json", model],
                                       {maxBuffer: 1 << 26}));
  const entry = info.metadata.find((m) => m.key === "tokenizer.chat_template");
  assert.ok(entry, `${model} has no tokenizer.chat_template`);
  assert.equal(entry.value, readFileSync(templateFile, "utf8"));
});

test("conversations to test", () => assert.ok(cases.length >= 3, `${cases.length} usable cases`));

for (const c of cases) {
  test(`${c.id}: both APIs count Jinja2's rendering`, async () => {
    const want = referencePromptTokens({data, bin, model, templateFile}, c.id);
    const messages = c.messages.map(({role, content}) => ({role, content}));
    const completion = await client.chat.completions.create(
        {model: "shardlm", messages, max_tokens: 1, temperature: 0});
    assert.equal(completion.usage.prompt_tokens, want, "HTTP /v1/chat/completions");
    const {summary} = await collectStream(grpcClient, "Chat",
                                          {messages, sampling: {temperature: 0, max_tokens: 1}});
    assert.ok(summary, "gRPC Chat ended without a summary");
    assert.equal(summary.prompt_tokens, want, "gRPC Chat");
  });
}
