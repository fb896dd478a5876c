// The prompt tokens the reference gives a conversation of
// ../shared/templates/cases.json: Jinja2's rendering of a chat template
// (Debian's python3-jinja2 through ../shared/reference/render_template.py,
// today's date, as the server renders it), tokenized with special tokens
// parsed by shardlm-tokenize (whose vocabularies pass llama.cpp's own test
// vectors). What /v1/chat/completions' usage.prompt_tokens must equal.
import {execFileSync} from "node:child_process";
import {join} from "node:path";

function today() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T00:00:00`;
}

// data: SHARDLM_TEST_DATA; bin: the folder of shardlm-tokenize; model: the
// GGUF whose vocabulary counts; templateFile: the .jinja to render.
export function referencePromptTokens({data, bin, model, templateFile}, caseId) {
  const text = execFileSync("/usr/bin/python3", [
    join(data, "reference", "render_template.py"), templateFile,
    join(data, "templates", "cases.json"), "--case", caseId, "--now", today()]);
  // The rendering carries the template's own BOS text where it wants one.
  const ids = JSON.parse(execFileSync(join(bin, "shardlm-tokenize"),
                                      ["--ids", "--no-bos", "--special", model, "-"], {input: text}));
  return ids.length;
}
