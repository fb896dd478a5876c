// Runs every ```sh block of docs/OPENAI.md exactly as written against a
// live server (run_e2e.sh starts it) and checks HTTP 200 and the JSON shape
// of each answer. The blocks read $SHARDLM_URL and $SHARDLM_API_KEY; `curl`
// is wrapped by a shell function that records the status and the body.
// Every ```js block (the openai SDK examples) runs too, as an ES module in
// this folder (where the `openai` package is installed), with the same two
// variables in its environment: it must exit 0 and print something.
// (```console blocks start the server and set the variables; ```json blocks
// show answers.)
import assert from "node:assert/strict";
import {execFileSync} from "node:child_process";
import {mkdtempSync, readFileSync, rmSync} from "node:fs";
import {tmpdir} from "node:os";
import {dirname, join} from "node:path";
import {test} from "node:test";
import {fileURLToPath} from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const doc = readFileSync(join(here, "..", "..", "docs", "OPENAI.md"), "utf8");
const blocks = [...doc.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
const jsBlocks = [...doc.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
const env = {
  ...process.env,
  SHARDLM_URL: `http://${process.env.SHARDLM_HTTP}`,
  SHARDLM_API_KEY: process.env.SHARDLM_API_KEY ?? "",
};

// Checks the body of one answer; returns a short description.
function checkShape(body) {
  if (body.startsWith("HTTP/")) {
    // `curl -I` of the chat page: its headers.
    assert.match(body, /^content-type: text\/html/im);
    assert.match(body, /^content-security-policy: default-src 'none';/im);
    return "chat page headers";
  }
  if (body.startsWith("data: ")) {
    const events = body.split("\n\n").filter((e) => e.trim() !== "");
    assert.equal(events.at(-1), "data: [DONE]", "a stream ends with [DONE]");
    let text = "";
    for (const e of events.slice(0, -1)) {
      assert.ok(e.startsWith("data: "), `an SSE event: ${e}`);
      const chunk = JSON.parse(e.slice(6));
      assert.ok(!chunk.error, `no error event: ${e}`);
      assert.equal(chunk.object, "chat.completion.chunk");
      for (const c of chunk.choices) text += c.delta.content ?? "";
    }
    assert.ok(text.length > 0, "the stream carries text");
    return `stream of ${events.length} events`;
  }
  const j = JSON.parse(body);
  assert.ok(!j.error, `no error: ${body}`);
  switch (j.object) {
    case "list":
      assert.ok(Array.isArray(j.data) && j.data.length === 1 && j.data[0].object === "model");
      break;
    case "text_completion":
      assert.equal(typeof j.choices[0].text, "string");
      assert.ok(j.usage.completion_tokens > 0);
      break;
    case "chat.completion":
      assert.equal(j.choices[0].message.role, "assistant");
      if (j.choices[0].message.tool_calls) {  // "Tool calls": arguments are JSON text
        assert.equal(j.choices[0].finish_reason, "tool_calls");
        for (const c of j.choices[0].message.tool_calls) JSON.parse(c.function.arguments);
      } else {
        assert.equal(typeof j.choices[0].message.content, "string");
      }
      assert.ok(j.usage.total_tokens > 0);
      break;
    default:
      if (j.stages) {  // /v1/pipeline
        assert.ok(j.stages.length > 0 && j.stages.every((s) => s.healthy), body);
        assert.ok(j.n_ctx > 0 && j.chat_template, body);
        return "pipeline";
      }
      assert.equal(j.status, "ok", `health or a known object: ${body}`);
  }
  return j.object ?? "health";
}

test("docs/OPENAI.md has curl examples", () => {
  assert.ok(blocks.length >= 5, `found ${blocks.length} sh blocks`);
});

for (const [i, block] of blocks.entries()) {
  const first = block.split("\n")[0];
  test(`docs example ${i + 1}: ${first}`, {timeout: 60_000}, () => {
    assert.equal(block.match(/\bcurl\b/g)?.length, 1, "one curl command per example");
    const dir = mkdtempSync(join(tmpdir(), "shardlm-doc-"));
    try {
      const script = `set -euo pipefail
curl() { command curl -sS --max-time 60 -o "${dir}/body" -w '%{http_code}' "$@" > "${dir}/status"; }
${block}`;
      execFileSync("bash", ["-c", script], {env, stdio: ["ignore", "inherit", "inherit"]});
      const status = readFileSync(join(dir, "status"), "utf8");
      const body = readFileSync(join(dir, "body"), "utf8");
      assert.equal(status, "200", `HTTP ${status}: ${body}`);
      checkShape(body);
    } finally {
      rmSync(dir, {recursive: true, force: true});
    }
  });
}

async function health() {
  return (await fetch(`${env.SHARDLM_URL}/health`)).json();
}

test("docs/OPENAI.md has SDK examples", () => {
  assert.ok(jsBlocks.length >= 3, `found ${jsBlocks.length} js blocks`);
});

for (const [i, block] of jsBlocks.entries()) {
  const call = block.match(/client\.[\w.]+/)?.[0] ?? "";
  test(`docs SDK example ${i + 1}: ${call}`, {timeout: 60_000}, async () => {
    const stops = block.includes("break;");
    const before = stops ? await health() : null;
    const out = execFileSync("node", ["--input-type=module", "-e", block],
                             {cwd: here, env, encoding: "utf8", timeout: 40_000});
    assert.ok(out.trim().length > 0, "the example prints its answer");
    if (stops) {
      // Leaving the loop early cancels the request on the server.
      assert.match(out, /\(stopped after 10 chunks\)/);
      const deadline = Date.now() + 15_000;
      let now = await health();
      while (now.http.cancelled === before.http.cancelled && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        now = await health();
      }
      assert.equal(now.http.cancelled, before.http.cancelled + 1, "the server cancelled it");
    }
  });
}
