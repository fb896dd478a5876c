// The chat prompt of a model that carries its own template, through both
// APIs with no template named: /v1/chat/completions (usage.prompt_tokens)
// and gRPC Chat (summary.prompt_tokens) must count exactly the tokens of
// Jinja2's rendering of that template (Debian's python3-jinja2 through
// ../shared/reference/render_template.py, today's date), tokenized with
// special tokens parsed (shardlm-tokenize, whose vocabularies pass
// llama.cpp's own test vectors). run_e2e.sh starts `shardlm serve` with the
// model and passes SHARDLM_HTTP, SHARDLM_GRPC, SHARDLM_API_KEY,
// SHARDLM_E2E_MODEL and SHARDLM_TEST_DATA; ctest passes SHARDLM_TEMPLATE_NAME
// (the templates/*.jinja the model carries) and SHARDLM_BIN.
import assert from "node:assert/strict";
import {execFileSync} from "node:child_process";
import {readFileSync} from "node:fs";
import {dirname, join} from "node:path";
import {test} from "node:test";
import {fileURLToPath} from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import OpenAI from "openai";

const {SHARDLM_HTTP: http, SHARDLM_GRPC: grpcAddress, SHARDLM_API_KEY: apiKey,
       SHARDLM_E2E_MODEL: model, SHARDLM_TEMPLATE_NAME: templateName, SHARDLM_BIN: bin,
       SHARDLM_TEST_DATA: data} = process.env;
assert.ok(http && grpcAddress && apiKey && model && templateName && bin && data,
          "SHARDLM_HTTP, SHARDLM_GRPC, SHARDLM_API_KEY, SHARDLM_E2E_MODEL, SHARDLM_TEMPLATE_NAME, " +
          "SHARDLM_BIN and SHARDLM_TEST_DATA must be set");
const templateFile = join(data, "templates", `${templateName}.jinja`);

const client = new OpenAI({baseURL: `http://${http}/v1`, apiKey, maxRetries: 0, timeout: 60_000});
const protoDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "protos");
const definition = protoLoader.loadSync(join(protoDir, "shardlm/v1/shardlm.proto"),
    {includeDirs: [protoDir], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true});
const {shardlm} = grpc.loadPackageDefinition(definition);
const stub = new shardlm.v1.ShardLM(grpcAddress, grpc.credentials.createInsecure());
const auth = new grpc.Metadata();
auth.set("authorization", `Bearer ${apiKey}`);

function grpcChatSummary(messages) {
  return new Promise((resolve, reject) => {
    let summary = null;
    const call = stub.Chat({messages, sampling: {temperature: 0, max_tokens: 1}}, auth,
                           {deadline: Date.now() + 60_000});
    call.on("data", (msg) => { if (msg.summary) summary = msg.summary; });
    call.on("error", reject);
    call.on("end", () => resolve(summary));
  });
}

// The conversations of ../shared/templates/cases.json that a client can send
// through these APIs: plain role/content messages, a generation prompt wanted.
const casesFile = join(data, "templates", "cases.json");
const cases = JSON.parse(readFileSync(casesFile, "utf8")).filter((c) =>
    c.add_generation_prompt && !("tools" in c) && !c.template_kwargs &&
    c.messages.every((m) => Object.keys(m).every((k) => k === "role" || k === "content")));

function today() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T00:00:00`;
}

function expectedTokens(caseId) {
  const text = execFileSync("/usr/bin/python3", [
    join(data, "reference", "render_template.py"), templateFile, casesFile, "--case", caseId,
    "--now", today()]);
  // The rendering carries the template's own BOS text where it wants one.
  const ids = JSON.parse(execFileSync(join(bin, "shardlm-tokenize"),
                                      ["--ids", "--no-bos", "--special", model, "-"], {input: text}));
  return ids.length;
}

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
    const want = expectedTokens(c.id);
    const messages = c.messages.map(({role, content}) => ({role, content}));
    const completion = await client.chat.completions.create(
        {model: "shardlm", messages, max_tokens: 1, temperature: 0});
    assert.equal(completion.usage.prompt_tokens, want, "HTTP /v1/chat/completions");
    const summary = await grpcChatSummary(messages);
    assert.ok(summary, "gRPC Chat ended without a summary");
    assert.equal(summary.prompt_tokens, want, "gRPC Chat");
  });
}
