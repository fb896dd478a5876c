// shardlm's OpenAI-compatible HTTP API driven by the official `openai`
// client, checked against the gRPC API of the same server: greedy output
// must be equal text for text. run_e2e.sh starts `shardlm serve` and passes:
//   SHARDLM_HTTP     host:port of the HTTP API
//   SHARDLM_GRPC     host:port of the gRPC API
//   SHARDLM_API_KEY  the bearer token the server accepts
import assert from "node:assert/strict";
import {test} from "node:test";
import OpenAI from "openai";
import {collectStream, grpc, shardlm, shardlmClient} from "./shardlm_grpc.mjs";

const http = process.env.SHARDLM_HTTP;
const grpcAddress = process.env.SHARDLM_GRPC;
const apiKey = process.env.SHARDLM_API_KEY;
assert.ok(http && grpcAddress && apiKey, "SHARDLM_HTTP, SHARDLM_GRPC and SHARDLM_API_KEY must be set");

const client = new OpenAI({baseURL: `http://${http}/v1`, apiKey, maxRetries: 0, timeout: 60_000});

// gRPC without the API key: it guards the HTTP API only.
const grpcClient = shardlmClient(grpcAddress);
const shardlmStub = grpcClient.stub;
const grpcStream = (method, request) => collectStream(grpcClient, method, request);

function unary(stub, method, request) {
  return new Promise((resolve, reject) => {
    stub[method](request, {deadline: Date.now() + 10_000}, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

async function modelId() {
  const models = await client.models.list();
  return models.data[0].id;
}

async function health() {
  const res = await fetch(`http://${http}/health`);
  return res.json();
}

// KV sequences each worker holds, from its Stage.GetShardInfo.
async function kvSequences() {
  const info = await unary(shardlmStub, "GetModelInfo", {});
  assert.ok(info.stages.length >= 1);
  const counts = [];
  for (const stage of info.stages) {
    // "worker 127.0.0.1:7001 (layers 0:3)" or a bare address.
    const address = /([^\s()]+:\d+)/.exec(stage.address)[1];
    const stub = new shardlm.v1.Stage(address, grpc.credentials.createInsecure());
    const shard = await unary(stub, "GetShardInfo", {});
    counts.push(Number(shard.kv.sequences));
    stub.close();
  }
  return counts;
}

async function eventually(check, what, ms = 10_000) {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const messages = [
  {role: "system", content: "You are a storyteller."},
  {role: "user", content: "Tell me about Lily and her dog."},
];

test("GET /v1/models lists the served model", {timeout: 30_000}, async () => {
  const models = await client.models.list();
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].id, "stories260K");
  assert.equal(models.data[0].object, "model");
});

test("streamed chat completion equals gRPC Chat token for token", {timeout: 60_000}, async () => {
  const model = await modelId();
  const stream = await client.chat.completions.create({
    model, messages, temperature: 0, max_tokens: 48, stream: true,
    stream_options: {include_usage: true},
  });
  let text = "";
  let chunks = 0;
  let finish = null;
  let usage = null;
  let role = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, "chat.completion.chunk");
    assert.equal(chunk.model, model);
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta.role) role = choice.delta.role;
      if (choice.delta.content) {
        text += choice.delta.content;
        ++chunks;
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.equal(role, "assistant");
  assert.ok(chunks > 1, "the reply arrives in several chunks");
  assert.ok(text.length > 0);
  const expected = await grpcStream("Chat", {
    messages, sampling: {temperature: 0, max_tokens: 48},
  });
  assert.equal(text, expected.text);
  assert.equal(finish, expected.summary.finish_reason === "FINISH_REASON_LENGTH" ? "length" : "stop");
  assert.equal(usage.completion_tokens, expected.summary.generated_tokens);
  assert.equal(usage.prompt_tokens, expected.summary.prompt_tokens);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
});

test("plain completion equals gRPC Generate token for token", {timeout: 60_000}, async () => {
  const model = await modelId();
  const prompt = "Once upon a time";
  const completion = await client.completions.create({model, prompt, temperature: 0, max_tokens: 40});
  assert.equal(completion.object, "text_completion");
  assert.equal(completion.choices.length, 1);
  const expected = await grpcStream("Generate", {prompt, sampling: {temperature: 0, max_tokens: 40}});
  assert.equal(completion.choices[0].text, expected.text);
  assert.equal(completion.usage.completion_tokens, expected.summary.generated_tokens);
  assert.equal(completion.usage.prompt_tokens, expected.summary.prompt_tokens);
  // The same request streamed gives the same text.
  const stream = await client.completions.create({model, prompt, temperature: 0, max_tokens: 40, stream: true});
  let streamed = "";
  for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? "";
  assert.equal(streamed, expected.text);
});

test("an invalid request gets an OpenAI-style error", {timeout: 30_000}, async () => {
  const model = await modelId();
  await assert.rejects(
      client.chat.completions.create({model, messages, n: 2}),
      (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, `got ${err}`);
        assert.equal(err.status, 400);
        assert.equal(err.type, "invalid_request_error");
        assert.equal(err.param, "n");
        assert.match(err.message, /n=1/);
        return true;
      });
  await assert.rejects(
      client.completions.create({model, prompt: "x", temperature: 500}),
      (err) => err instanceof OpenAI.BadRequestError && err.param === "temperature");
  await assert.rejects(
      client.chat.completions.create({model, messages, template: "vicuna"}),
      (err) => err instanceof OpenAI.BadRequestError && err.param === "template" && /vicuna/.test(err.message));
  // The gRPC Chat refuses the same way, with INVALID_ARGUMENT.
  await assert.rejects(grpcStream("Chat", {messages, template: "vicuna"}),
                       (err) => err.code === grpc.status.INVALID_ARGUMENT && /vicuna/.test(err.details));
  await assert.rejects(grpcStream("Chat", {messages: [{role: "tool", content: "x"}]}),
                       (err) => err.code === grpc.status.INVALID_ARGUMENT && /role/.test(err.details));
  const stranger = new OpenAI({baseURL: `http://${http}/v1`, apiKey: "not-the-key", maxRetries: 0});
  await assert.rejects(stranger.models.list(), (err) => {
    assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err}`);
    assert.equal(err.status, 401);
    assert.equal(err.code, "invalid_api_key");
    return true;
  });
});

test("a client that disconnects mid-stream frees the sequence's KV on every worker",
     {timeout: 60_000}, async () => {
  const model = await modelId();
  const before = await health();
  const stream = await client.completions.create({
    model, prompt: "Once upon a time", temperature: 0, max_tokens: 1500, stream: true,
    ignore_eos: true,  // shardlm extension: long enough to still run when we leave
  });
  let chunks = 0;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.text) ++chunks;
    if (chunks === 3) break;  // leaving the loop aborts the HTTP request
  }
  stream.controller.abort();
  assert.equal(chunks, 3);
  await eventually(async () => {
    const h = await health();
    return h.http.client_disconnects > before.http.client_disconnects &&
           h.http.cancelled > before.http.cancelled;
  }, "the server to cancel the abandoned request");
  await eventually(async () => (await kvSequences()).every((n) => n === 0), "KV freed on every worker");
  const h = await health();
  assert.equal(h.engine.active, 0);
});

test.after(() => shardlmStub.close());
