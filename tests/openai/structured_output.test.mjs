// Structured output through the official `openai` client (and gRPC):
// response_format json_schema over the schema suite of
// tests/grammar/schemas (temperature 1, a seed per schema: every answer
// must parse and fit its schema, 100%), json_object, streaming, the 400
// naming an unsupported keyword, and the gRPC SamplingParams fields.
// run_e2e.sh starts `shardlm serve` (SHARDLM_E2E_MODEL_NAME picks the model).
import assert from "node:assert/strict";
import {readdirSync, readFileSync} from "node:fs";
import {dirname, join} from "node:path";
import {test} from "node:test";
import {fileURLToPath} from "node:url";
import OpenAI from "openai";
import {checkSchema} from "./json_schema_check.mjs";
import {collectStream, grpc, shardlmClient} from "./shardlm_grpc.mjs";

const http = process.env.SHARDLM_HTTP;
const grpcAddress = process.env.SHARDLM_GRPC;
const apiKey = process.env.SHARDLM_API_KEY;
assert.ok(http && grpcAddress && apiKey, "SHARDLM_HTTP, SHARDLM_GRPC and SHARDLM_API_KEY must be set");
const client = new OpenAI({baseURL: `http://${http}/v1`, apiKey, maxRetries: 0, timeout: 120_000});

const here = dirname(fileURLToPath(import.meta.url));
const schemaDir = join(here, "..", "grammar", "schemas");
const schemas = readdirSync(schemaDir).filter((f) => f.endsWith(".json")).sort()
    .map((f) => ({name: f.replace(/\.json$/, ""), schema: JSON.parse(readFileSync(join(schemaDir, f), "utf8"))}));

const grpcClient = shardlmClient(grpcAddress, apiKey);
const {stub, metadata} = grpcClient;
const generate = (request) => collectStream(grpcClient, "Generate", request, 120_000);

const messages = [{role: "user", content: "Tell me about a cat, as JSON."}];

// The checker the answers are held to must itself refuse what each keyword
// forbids, or the suite below could not fail.
test("checkSchema refuses a value breaking each keyword and accepts one that fits", () => {
  const schema = {
    type: "object",
    properties: {
      name: {type: "string", minLength: 2, maxLength: 4},
      kind: {enum: ["a", "b"]},
      v: {const: 1},
      tags: {type: "array", items: {type: "integer"}, minItems: 1, maxItems: 2},
      when: {type: "string", format: "date"},
      either: {anyOf: [{type: "string"}, {type: "null"}]},
      one: {oneOf: [{type: "integer"}, {type: "number"}]},
      ref: {$ref: "#/$defs/flag"},
    },
    required: ["name"],
    additionalProperties: false,
    $defs: {flag: {type: "boolean"}},
  };
  const good = {name: "abc", kind: "a", v: 1, tags: [1], when: "2026-12-02", either: null, one: 1.5,
                ref: true};
  assert.equal(checkSchema(schema, good), "");
  const bad = [
    [{}, /missing name/], [{...good, extra: 1}, /schema false/], [[], /not of type/],
    [{...good, name: "a"}, /minLength/], [{...good, name: "abcde"}, /maxLength/],
    [{...good, kind: "c"}, /enum/], [{...good, v: 2}, /const/],
    [{...good, tags: []}, /minItems/], [{...good, tags: [1, 2, 3]}, /maxItems/],
    [{...good, tags: [1.5]}, /type/], [{...good, when: "2026-13-02"}, /date/],
    [{...good, either: 1}, /anyOf/], [{...good, one: 1}, /2 oneOf/], [{...good, ref: "yes"}, /type/],
  ];
  for (const [value, why] of bad) assert.match(checkSchema(schema, value), why, JSON.stringify(value));
});

test("json_schema: every schema of the suite answers valid JSON that fits it", async () => {
  assert.ok(schemas.length >= 50, `${schemas.length} schemas`);
  const model = (await client.models.list()).data[0].id;
  // A few at a time: the server batches them.
  const failures = [];
  for (let i = 0; i < schemas.length; i += 8) {
    await Promise.all(schemas.slice(i, i + 8).map(async ({name, schema}, j) => {
      const completion = await client.chat.completions.create({
        model, messages, temperature: 1, seed: 100 + i + j, max_tokens: 1024,
        response_format: {type: "json_schema", json_schema: {name, schema, strict: true}},
      });
      const choice = completion.choices[0];
      let value;
      try {
        value = JSON.parse(choice.message.content);
      } catch (e) {
        failures.push(`${name}: not JSON (${choice.finish_reason}): ${choice.message.content}`);
        return;
      }
      const why = checkSchema(schema, value);
      if (why) failures.push(`${name}: ${why}: ${choice.message.content}`);
      if (choice.finish_reason !== "stop") failures.push(`${name}: finish_reason ${choice.finish_reason}`);
    }));
  }
  assert.deepEqual(failures, []);
});

// json_object bounds neither string lengths nor member counts, and a small
// story model keeps adding members (it likes `", "`), a random-weight one
// rarely picks a quote: a logit bias towards quotes and the closing brace
// (as a client would do) lets them finish, and every answer must then be a
// JSON object.
async function closingBias() {
  const bias = {};
  for (const text of ["}", "\"", "\"}"]) {
    const res = await new Promise((resolve, reject) => stub.Tokenize(
        {text, add_bos: false}, metadata, {deadline: Date.now() + 10_000},
        (err, r) => (err ? reject(err) : resolve(r))));
    res.token_ids.forEach((id, i) => {
      const p = res.pieces[i];
      if (p.includes("}") || p.includes("\"") || p === "<0x7D>" || p === "<0x22>") bias[id] = 20;
    });
  }
  assert.ok(Object.keys(bias).length > 0);
  return bias;
}

test("json_object: answers are JSON objects", async () => {
  const model = (await client.models.list()).data[0].id;
  const logit_bias = await closingBias();
  for (let seed = 0; seed < 4; seed++) {
    const completion = await client.chat.completions.create({
      model, messages, temperature: 0.7, seed, max_tokens: 1024, logit_bias,
      response_format: {type: "json_object"},
    });
    const choice = completion.choices[0];
    assert.equal(choice.finish_reason, "stop", choice.message.content);
    const value = JSON.parse(choice.message.content);
    assert.ok(typeof value === "object" && value !== null && !Array.isArray(value), choice.message.content);
  }
});

test("json_schema streamed: the deltas join into valid JSON", async () => {
  const model = (await client.models.list()).data[0].id;
  const {schema} = schemas.find((s) => s.name === "weather");
  const stream = await client.chat.completions.create({
    model, messages, temperature: 1, seed: 5, max_tokens: 512, stream: true,
    response_format: {type: "json_schema", json_schema: {name: "weather", schema, strict: true}},
  });
  let text = "";
  let finish = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(finish, "stop");
  assert.equal(checkSchema(schema, JSON.parse(text)), "", text);
});

test("a schema the server cannot honour is a 400 naming the keyword", async () => {
  const model = (await client.models.list()).data[0].id;
  await assert.rejects(
      client.chat.completions.create({
        model, messages, max_tokens: 8,
        response_format: {type: "json_schema", json_schema: {name: "p", schema: {type: "string", pattern: "^a+$"}}},
      }),
      (err) => {
        assert.equal(err.status, 400);
        assert.match(err.message, /keyword 'pattern'/);
        assert.equal(err.param, "response_format.json_schema.schema");
        return true;
      });
  await assert.rejects(
      client.chat.completions.create({model, messages, max_tokens: 8, response_format: {type: "xml"}}),
      (err) => err.status === 400 && err.param === "response_format.type");
});

test("gRPC: json_schema, json_object and grammar fields of SamplingParams", async () => {
  const {schema} = schemas.find((s) => s.name === "person");
  const a = await generate({prompt: "Once upon a time", sampling: {temperature: 1, seed: 3, max_tokens: 512,
                                                                   json_schema: JSON.stringify(schema)}});
  assert.equal(a.summary.finish_reason, "FINISH_REASON_STOP");
  assert.equal(checkSchema(schema, JSON.parse(a.text)), "", a.text);
  const b = await generate({prompt: "Once upon a time", sampling: {temperature: 0, max_tokens: 1024, json_object: true,
                                                                   logit_bias: await closingBias()}});
  assert.equal(b.summary.finish_reason, "FINISH_REASON_STOP", b.text);
  assert.equal(typeof JSON.parse(b.text), "object", b.text);
  const c = await generate({prompt: "Once upon a time", sampling: {temperature: 1, seed: 1, max_tokens: 64,
                                                                   grammar: 'root ::= ("yes" | "no") "."'}});
  assert.match(c.text, /^(yes|no)\.$/);
  await assert.rejects(generate({prompt: "x", sampling: {grammar: "root ::= [a-z"}}), (err) => {
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.match(err.details, /line 1, column 10/);
    return true;
  });
  await assert.rejects(generate({prompt: "x", sampling: {grammar: 'root ::= "a"', json_object: true}}),
                       (err) => err.code === grpc.status.INVALID_ARGUMENT && /at most one/.test(err.details));
});
