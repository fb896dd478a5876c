// Runs every ```sh block of docs/OPENAI.md exactly as written against a
// live server (run_e2e.sh starts it) and checks HTTP 200 and the JSON shape
// of each answer. The blocks read $SHARDLM_URL and $SHARDLM_API_KEY; `curl`
// is wrapped by a shell function that records the status and the body.
import assert from "node:assert/strict";
import {execFileSync} from "node:child_process";
import {mkdtempSync, readFileSync, rmSync} from "node:fs";
import {tmpdir} from "node:os";
import {dirname, join} from "node:path";
import {test} from "node:test";
import {fileURLToPath} from "node:url";

const doc = readFileSync(
    join(dirname(fileURLToPath(import.meta.url)), "..", "..", "docs", "OPENAI.md"), "utf8");
const blocks = [...doc.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
const env = {
  ...process.env,
  SHARDLM_URL: `http://${process.env.SHARDLM_HTTP}`,
  SHARDLM_API_KEY: process.env.SHARDLM_API_KEY ?? "",
};

// Checks the body of one answer; returns a short description.
function checkShape(body) {
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
