// Tool calling on /v1/chat/completions through the official `openai`
// client, on a family model with its own chat template (Llama 3.1's JSON
// calls, Qwen2.5's Hermes <tool_call> tags). The models have random
// weights: what they say means nothing, so every check is on structure —
// tool_choice "required" / a named function must come back as tool_calls
// naming the function with arguments that parse and fit its schema (the
// grammar enforces it), streamed as OpenAI streams calls; a conversation
// carrying a call and its result must be rendered as Jinja2 renders the
// model's template (prompt_tokens counted by reference_prompt.mjs).
// run_e2e.sh starts `shardlm serve` and passes SHARDLM_HTTP,
// SHARDLM_API_KEY, SHARDLM_E2E_MODEL, SHARDLM_TEST_DATA and SHARDLM_BIN;
// ctest passes SHARDLM_TEMPLATE_NAME.
import assert from "node:assert/strict";
import {readFileSync} from "node:fs";
import {join} from "node:path";
import {test} from "node:test";
import OpenAI from "openai";
import {checkSchema} from "./json_schema_check.mjs";
import {referencePromptTokens} from "./reference_prompt.mjs";

const {SHARDLM_HTTP: http, SHARDLM_API_KEY: apiKey, SHARDLM_E2E_MODEL: model,
       SHARDLM_TEMPLATE_NAME: templateName, SHARDLM_BIN: bin, SHARDLM_TEST_DATA: data} = process.env;
assert.ok(http && apiKey && model && templateName && bin && data,
          "SHARDLM_HTTP, SHARDLM_API_KEY, SHARDLM_E2E_MODEL, SHARDLM_TEMPLATE_NAME, SHARDLM_BIN " +
          "and SHARDLM_TEST_DATA must be set");

const client = new OpenAI({baseURL: `http://${http}/v1`, apiKey, maxRetries: 0, timeout: 120_000});

// Bounded strings (maxLength): a random-weight model has no reason ever to
// close a free string, and would spend max_tokens inside one.
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather for a city.",
    parameters: {
      type: "object",
      properties: {
        location: {type: "string", maxLength: 12, description: "City and country"},
        unit: {type: "string", enum: ["celsius", "fahrenheit"]},
        days: {type: "integer"},
      },
      required: ["location", "unit"],
      additionalProperties: false,
    },
  },
};
const search = {
  type: "function",
  function: {
    name: "search_web",
    description: "Search the web.",
    parameters: {
      type: "object",
      properties: {
        query: {type: "string", maxLength: 10},
        safe: {type: "boolean"},
      },
      required: ["query", "safe"],
      additionalProperties: false,
    },
  },
};
const tools = [weather, search];
const messages = [{role: "user", content: "What's the weather in Paris?"}];

// The arguments fit the function's schema.
function checkArguments(fn, text) {
  let args;
  assert.doesNotThrow(() => { args = JSON.parse(text); }, `arguments are not JSON: ${text}`);
  assert.equal(checkSchema(fn.parameters, args), "", `${fn.name}: ${text}`);
  return args;
}

function checkCall(call, fn) {
  assert.equal(call.type, "function");
  assert.equal(typeof call.id, "string");
  assert.ok(call.id.length > 0);
  assert.equal(call.function.name, fn.function.name);
  assert.equal(typeof call.function.arguments, "string");
  return checkArguments(fn.function, call.function.arguments);
}

test("tool_choice required: a call to the function with arguments that fit", async () => {
  const r = await client.chat.completions.create({
    model: "shardlm", messages, tools: [weather], tool_choice: "required",
    parallel_tool_calls: false, temperature: 0, max_tokens: 200,
  });
  const choice = r.choices[0];
  assert.equal(choice.finish_reason, "tool_calls", JSON.stringify(choice));
  assert.equal(choice.message.role, "assistant");
  assert.equal(choice.message.content, null);
  assert.equal(choice.message.tool_calls.length, 1);
  checkCall(choice.message.tool_calls[0], weather);
});

test("tool_choice required with sampling: every seed gives a valid call", async () => {
  for (let seed = 1; seed <= 4; ++seed) {
    const r = await client.chat.completions.create({
      model: "shardlm", messages, tools, tool_choice: "required", parallel_tool_calls: false,
      temperature: 1, seed, max_tokens: 200,
    });
    const choice = r.choices[0];
    assert.equal(choice.finish_reason, "tool_calls", JSON.stringify(choice));
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    checkCall(call, tools.find((t) => t.function.name === call.function.name));
  }
});

test("a named tool_choice calls that function", async () => {
  const r = await client.chat.completions.create({
    model: "shardlm", messages, tools,
    tool_choice: {type: "function", function: {name: "search_web"}},
    temperature: 0, max_tokens: 200, parallel_tool_calls: false,
  });
  assert.equal(r.choices[0].finish_reason, "tool_calls");
  assert.equal(r.choices[0].message.tool_calls.length, 1);
  checkCall(r.choices[0].message.tool_calls[0], search);
});

test("streamed: id and name first, then the arguments in pieces", async () => {
  const stream = await client.chat.completions.create({
    model: "shardlm", messages, tools: [weather], tool_choice: "required",
    parallel_tool_calls: false, temperature: 0, max_tokens: 200, stream: true,
  });
  const calls = [];
  let finish = null;
  let pieces = 0;
  let content = "";
  for await (const chunk of stream) {
    const choice = chunk.choices[0];
    if (!choice) continue;
    if (choice.finish_reason) finish = choice.finish_reason;
    if (choice.delta.content) content += choice.delta.content;
    for (const d of choice.delta.tool_calls ?? []) {
      if (!calls[d.index]) {
        assert.ok(d.id && d.function?.name, `the first delta of call ${d.index} carries id and name`);
        assert.equal(d.type, "function");
        calls[d.index] = {id: d.id, type: d.type, function: {name: d.function.name, arguments: ""}};
      } else {
        assert.equal(d.id, undefined, "the id comes once");
      }
      if (d.function?.arguments) {
        calls[d.index].function.arguments += d.function.arguments;
        ++pieces;
      }
    }
  }
  assert.equal(finish, "tool_calls");
  assert.equal(content, "");
  assert.equal(calls.length, 1);
  checkCall(calls[0], weather);
  assert.ok(pieces >= 2, `arguments in ${pieces} piece(s)`);
});

// cases.json's tools_call_result sent the OpenAI way (arguments as a string).
const cases = JSON.parse(readFileSync(join(data, "templates", "cases.json"), "utf8"));
const callResult = cases.find((c) => c.id === "tools_call_result");

function openAiMessages(c) {
  return c.messages.map((m) => {
    const out = {...m};
    if (m.tool_calls) {
      out.tool_calls = m.tool_calls.map((t) => ({
        ...t, function: {...t.function, arguments: JSON.stringify(t.function.arguments)}}));
    }
    return out;
  });
}

test("a call and its result in the conversation: rendered as Jinja2 renders the template", async () => {
  const want = referencePromptTokens(
      {data, bin, model, templateFile: join(data, "templates", `${templateName}.jinja`)}, "tools_call_result");
  const r = await client.chat.completions.create({
    model: "shardlm", messages: openAiMessages(callResult), tools: callResult.tools,
    temperature: 0, max_tokens: 1,
  });
  assert.equal(r.usage.prompt_tokens, want);
});

test("tool_choice none: the tools are not shown and nothing is parsed", async () => {
  const none = await client.chat.completions.create({
    model: "shardlm", messages, tools, tool_choice: "none", temperature: 0, max_tokens: 8,
  });
  const plain = await client.chat.completions.create({
    model: "shardlm", messages, temperature: 0, max_tokens: 8,
  });
  assert.equal(none.usage.prompt_tokens, plain.usage.prompt_tokens);
  assert.equal(none.choices[0].message.content, plain.choices[0].message.content);
  assert.equal(none.choices[0].message.tool_calls, undefined);
  const auto = await client.chat.completions.create({
    model: "shardlm", messages, tools, temperature: 0, max_tokens: 8,
  });
  assert.ok(auto.usage.prompt_tokens > plain.usage.prompt_tokens, "auto shows the tools");
});

test("bad tool requests are 400s naming the field", async () => {
  await assert.rejects(
      client.chat.completions.create({model: "shardlm", messages, tools,
                                      tool_choice: {type: "function", function: {name: "nope"}}}),
      (e) => e.status === 400 && e.param === "tool_choice");
  await assert.rejects(
      client.chat.completions.create({model: "shardlm", messages, tool_choice: "required"}),
      (e) => e.status === 400 && e.param === "tool_choice");
  await assert.rejects(
      client.chat.completions.create({model: "shardlm", messages,
                                      tools: [{type: "function", function: {name: "bad name"}}]}),
      (e) => e.status === 400 && e.param === "tools");
});
