// The chat page (GET /, coordinator/web/chat.html) in a real browser:
// Debian's headless chromium driven through the DevTools protocol
// (chrome-remote-interface). run_webui.sh starts it; this file starts
// `shardlm serve` itself on the embedded stories260K (no --model), which has
// no chat template, so every chat here also exercises the ChatML default.
//
//   1. GET / needs no key and carries a nonce CSP; /v1/pipeline needs it.
//   2. The server logged the ChatML default once.
//   3. In the browser: type the key (it lands in localStorage and the stages
//      appear), set greedy sampling, type a message, click Send; the reply
//      streams into the DOM (seen part-written) and equals the API's greedy
//      answer to the same conversation.
//   4. New chat, a long greedy generation (its question spells markup, shown
//      as text), click Stop after the first token:
//      the reply stops growing, is a strict prefix of the full greedy reply,
//      and the server counts a cancelled request with nothing left active.
//   5. No console error, exception or CSP violation on the page.
// Every wait is bounded; the server and the browser are ended by their pids.
// SHARDLM_WEBUI_SCREENSHOT=FILE.png saves the page after step 3 (docs/).
import assert from "node:assert/strict";
import {spawn} from "node:child_process";
import {mkdtempSync, rmSync, writeFileSync} from "node:fs";
import {tmpdir} from "node:os";
import {join} from "node:path";
import {after, before, test} from "node:test";
import CDP from "chrome-remote-interface";

const BIN = process.env.SHARDLM_BIN;
const CHROMIUM = process.env.SHARDLM_CHROMIUM ?? "/usr/bin/chromium";
const KEY = `sk-webui-${process.pid}`;
const tmp = mkdtempSync(join(tmpdir(), "shardlm-webui-"));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let serve, serveErr = "", base, browser, client;
const pageErrors = [];

// Resolves with the first match of `re` in a stream's text (bounded).
function waitForLine(stream, re, ms, what) {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms:\n${text}`)), ms);
    stream.on("data", (d) => {
      text += d;
      const m = text.match(re);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
  });
}

// Ends a child we started: SIGTERM, then SIGKILL if it lingers.
async function end(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  if (await Promise.race([exited.then(() => true), sleep(10000).then(() => false)])) return;
  child.kill("SIGKILL");
  await exited;
}

async function until(what, ms, probe) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

async function evaluate(expression) {
  const r = await client.Runtime.evaluate({expression, returnByValue: true, awaitPromise: true});
  if (r.exceptionDetails) throw new Error(`${expression}: ${JSON.stringify(r.exceptionDetails)}`);
  return r.result.value;
}

// A real mouse click at the middle of the element.
async function click(selector) {
  const box = await evaluate(`(() => { const r = document.querySelector(${JSON.stringify(selector)})
      .getBoundingClientRect(); return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()`);
  for (const type of ["mousePressed", "mouseReleased"]) {
    await client.Input.dispatchMouseEvent({type, x: box.x, y: box.y, button: "left", clickCount: 1});
  }
}

// Focus, replace the value by typing `text`, leave the field (fires change).
async function fill(selector, text) {
  const sel = JSON.stringify(selector);
  await evaluate(`(() => { const e = document.querySelector(${sel}); e.focus(); e.value = ""; })()`);
  if (text !== "") {
    await client.Input.insertText({text});
    await evaluate(`document.querySelector(${sel}).blur()`);
  } else {
    // Nothing typed: blur alone fires no change event.
    await evaluate(`(() => { const e = document.querySelector(${sel});
        e.blur(); e.dispatchEvent(new Event("change")); })()`);
  }
}

async function api(path, body) {
  const r = await fetch(base + path, {
    method: body ? "POST" : "GET",
    headers: {"Authorization": `Bearer ${KEY}`, "Content-Type": "application/json"},
    body: body ? JSON.stringify(body) : undefined,
  });
  assert.equal(r.status, 200, `${path}: ${r.status}`);
  return r.json();
}

before(async () => {
  serve = spawn(join(BIN, "shardlm"), ["serve", "--workers", "2", "--threads", "1",
      "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--api-key", KEY],
      {env: {...process.env, SHARDLM_CACHE_DIR: join(tmp, "cache")}, stdio: ["ignore", "pipe", "pipe"]});
  serve.stderr.setEncoding("utf8");
  serve.stderr.on("data", (d) => { serveErr += d; });
  serve.stdout.setEncoding("utf8");
  const http = waitForLine(serve.stdout, /^HTTP (\S+)$/m, 60000, "shardlm serve");
  await waitForLine(serve.stdout, /^SERVING /m, 60000, "shardlm serve");
  base = `http://${(await http)[1]}`;

  browser = spawn(CHROMIUM, ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
      "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
      "--disable-background-networking", "--disable-component-update", "--mute-audio",
      "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
      `--user-data-dir=${join(tmp, "profile")}`, "--window-size=1200,880", "about:blank"],
      {stdio: ["ignore", "ignore", "pipe"]});
  browser.stderr.setEncoding("utf8");
  const ws = await waitForLine(browser.stderr, /DevTools listening on ws:\/\/127\.0\.0\.1:(\d+)\//,
                               60000, "chromium");
  const port = Number(ws[1]);
  const targets = await until("a page target", 10000,
      async () => (await CDP.List({host: "127.0.0.1", port})).find((t) => t.type === "page"));
  client = await CDP({host: "127.0.0.1", port, target: targets});
  client.Runtime.consoleAPICalled(({type, args}) => {
    if (type === "error" || type === "assert") pageErrors.push(`console.${type}: ${JSON.stringify(args)}`);
  });
  client.Runtime.exceptionThrown(({exceptionDetails}) => {
    pageErrors.push(`exception: ${JSON.stringify(exceptionDetails)}`);
  });
  // Network failures and CSP violations come as log entries.
  client.Log.entryAdded(({entry}) => {
    if (entry.level === "error") pageErrors.push(`log (${entry.source}): ${entry.text} ${entry.url ?? ""}`);
  });
  await Promise.all([client.Runtime.enable(), client.Log.enable(), client.Page.enable()]);
  await client.Emulation.setDeviceMetricsOverride({width: 1200, height: 880, deviceScaleFactor: 1,
                                                   mobile: false});
});

after(async () => {
  if (client) {
    try {
      await Promise.race([client.Browser.close(), sleep(5000)]);
    } catch (e) { /* already gone */ }
    await client.close().catch(() => {});
  }
  await end(browser);
  await end(serve);
  rmSync(tmp, {recursive: true, force: true});
});

test("GET / serves the page without a key, under a nonce CSP", async () => {
  const pages = [];
  for (let i = 0; i < 2; ++i) {
    const r = await fetch(`${base}/`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type"), /^text\/html/);
    const csp = r.headers.get("content-security-policy");
    const nonce = csp.match(/script-src 'nonce-([A-Za-z0-9+/=]+)'/)[1];
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /connect-src 'self'/);
    const body = await r.text();
    assert.ok(body.includes(`<script nonce="${nonce}">`), "the script carries the header's nonce");
    assert.ok(!body.includes("{{CSP_NONCE}}"));
    pages.push(nonce);
  }
  assert.notEqual(pages[0], pages[1], "a fresh nonce per response");
  assert.equal((await fetch(`${base}/v1/pipeline`)).status, 401, "the pipeline needs the key");
  const p = await api("/v1/pipeline");
  assert.equal(p.stages.length, 2);
  assert.ok(p.stages.every((s) => s.healthy));
  assert.equal(p.stages[0].first_layer, 0);
  assert.equal(p.stages[1].last_layer, p.n_layer);
  assert.match(p.chat_template, /^chatml/);
});

test("the ChatML default is logged once", () => {
  const lines = serveErr.split("\n").filter((l) => l.includes("chat template:"));
  assert.deepEqual(lines, ["shardlm serve: chat template: chatml (the model has no chat template)"]);
});

test("a message streams its reply into the page", async () => {
  const loaded = client.Page.loadEventFired();
  await client.Page.navigate({url: `${base}/`});
  await Promise.race([loaded, sleep(20000).then(() => { throw new Error("the page did not load"); })]);
  await until("the page to reach the server", 20000,
      () => evaluate(`document.getElementById("stages").textContent.includes("enter the API key")`));
  const model = await evaluate(`document.getElementById("model-name").textContent`);
  const health = await (await fetch(`${base}/health`)).json();
  assert.equal(model, health.model);

  await fill("#api-key", KEY);
  assert.equal(await evaluate(`localStorage.getItem("shardlm.apiKey")`), KEY);
  await until("two healthy stages", 20000,
      () => evaluate(`document.querySelectorAll('#stages li[data-healthy="true"]').length === 2`));
  await fill("#temperature", "0");
  await fill("#max-tokens", "160");
  await fill("#system-prompt", "You are a storyteller.");

  // Record the reply's lengths as the DOM shows them: a streamed reply is
  // seen part-written before it is whole.
  await evaluate(`(() => {
    window.__lengths = [];
    new MutationObserver(() => {
      const c = document.querySelector(".msg.assistant:last-child .content");
      if (c) window.__lengths.push(c.textContent.length);
    }).observe(document.getElementById("conversation"),
               {subtree: true, childList: true, characterData: true});
  })()`);
  const question = "Tell me about a dog.";
  await fill("#message", question);
  await click("#send");
  await until("the reply to end", 60000,
      () => evaluate(`(document.querySelector(".msg.assistant:last-child") || {dataset: {}}).dataset.finish`));
  const reply = await evaluate(`document.querySelector(".msg.assistant:last-child .content").textContent`);
  const finish = await evaluate(`document.querySelector(".msg.assistant:last-child").dataset.finish`);
  const lengths = await evaluate("window.__lengths");
  const expected = await api("/v1/chat/completions", {
    model: health.model, max_tokens: 160, temperature: 0, top_p: 0.95,
    messages: [{role: "system", content: "You are a storyteller."}, {role: "user", content: question}],
  });
  assert.ok(reply.length > 0, "a reply in the DOM");
  assert.equal(reply, expected.choices[0].message.content, "the page shows the API's greedy reply");
  assert.equal(finish, expected.choices[0].finish_reason);
  const partial = lengths.filter((n) => n > 0 && n < reply.length);
  assert.ok(partial.length > 0, `the reply was shown part-written (lengths ${lengths})`);
  assert.equal(await evaluate(`document.querySelector(".msg.user .content").textContent`), question);
  assert.match(await evaluate(`document.getElementById("status").textContent`), /tokens in/);

  if (process.env.SHARDLM_WEBUI_SCREENSHOT) {
    const shot = await client.Page.captureScreenshot({format: "png"});
    writeFileSync(process.env.SHARDLM_WEBUI_SCREENSHOT, Buffer.from(shot.data, "base64"));
  }
});

test("Stop ends a long generation on the server", async () => {
  await click("#new-chat");
  assert.equal(await evaluate(`document.querySelectorAll(".msg").length`), 0);
  await fill("#max-tokens", "");  // until the context is full
  await fill("#system-prompt", "");
  // Markup in a message is text (the replies take the same path).
  const question = `Tell me a story. <b>bold</b><img src=x onerror="window.__pwned=1">`;
  // Greedy, this conversation runs at least 1000 tokens (about 1.5 s here,
  // more on a loaded machine): Stop, clicked right after the first token,
  // lands in the middle of it.
  const full = await api("/v1/chat/completions", {
    max_tokens: 1000, temperature: 0, top_p: 0.95, messages: [{role: "user", content: question}]});
  assert.equal(full.choices[0].finish_reason, "length");
  const before = (await api("/health")).http;

  await fill("#message", question);
  await click("#send");
  // Resolved in the page by the DOM change that shows the first token (no
  // polling delay), then a real click.
  await evaluate(`new Promise((resolve, reject) => {
    const has = () => (document.querySelector(".msg.assistant .content") || {}).textContent?.length > 0;
    if (has()) return resolve(true);
    const timer = setTimeout(() => reject(new Error("no token within 20 s")), 20000);
    new MutationObserver((_, observer) => {
      if (has()) { observer.disconnect(); clearTimeout(timer); resolve(true); }
    }).observe(document.getElementById("conversation"),
               {subtree: true, childList: true, characterData: true});
  })`);
  await click("#stop");
  await until("the reply to end", 20000,
      () => evaluate(`document.querySelector(".msg.assistant").dataset.finish`));
  assert.equal(await evaluate(`document.querySelector(".msg.assistant").dataset.finish`), "stopped");
  assert.equal(await evaluate(`document.querySelector(".msg.user .content").textContent`), question);
  assert.equal(await evaluate(`document.querySelectorAll("#conversation img, #conversation b").length`), 0);
  assert.equal(await evaluate(`window.__pwned`), undefined);
  assert.equal(await evaluate(`document.getElementById("stop").disabled`), true);
  assert.equal(await evaluate(`document.getElementById("send").disabled`), false);
  const stopped = await evaluate(`document.querySelector(".msg.assistant .content").textContent`);
  await sleep(500);
  assert.equal(await evaluate(`document.querySelector(".msg.assistant .content").textContent`), stopped,
               "the reply no longer grows");
  const whole = full.choices[0].message.content;
  assert.ok(stopped.length > 0 && stopped.length < whole.length && whole.startsWith(stopped),
            `a strict prefix of the greedy reply: ${JSON.stringify(stopped)}`);
  const h = await until("the server to cancel the sequence", 20000, async () => {
    const now = await api("/health");
    return now.engine.active === 0 && now.http.cancelled > before.cancelled ? now : null;
  });
  assert.equal(h.http.client_disconnects, before.client_disconnects + 1);
});

test("no console errors, exceptions or CSP violations", () => {
  assert.deepEqual(pageErrors, []);
});
