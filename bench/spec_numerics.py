#!/usr/bin/env python3
"""Greedy tokens with and without speculative decoding, per model.

A verification pass computes K+1 positions of a sequence in one batch; plain
decoding computes one. The kernels may tile them differently (4-token tiles,
f32 sgemm order), so the last bits of the logits can differ, and where the
top two tokens are a near-tie the argmax can flip. For each model this serves
it with `shardlm serve --workers 2 --spec-ngram 4 --http-listen` and asks the
OpenAI API for 200 greedy tokens from BOS and from a few prompts, once with
"speculative": false and once with speculation, then reports whether the
token sequences are identical and, where they are not, the plain run's
top-1 / top-2 log-probability margin at the first difference.

  [KV_TYPE=f32] bench/spec_numerics.py BIN_DIR [MODEL.gguf ...]   (KV cache type, default f16)
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "models")
MODELS = ["stories260K.gguf", "nano-q4_0.gguf", "nano-q8_0.gguf", "nano-q4_k_m.gguf"]
KV_TYPE = os.environ.get("KV_TYPE", "f16")  # serve's default
PROMPTS = [[1], "Once upon a time", "The little bird", "Lily saw a big red ball and"]


def serve(bin_dir, model):
    proc = subprocess.Popen(
        [os.path.join(bin_dir, "shardlm"), "serve", "--model", model, "--workers", "2",
         "--threads", "1", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
         "--spec-ngram", "4", "--kv-type", KV_TYPE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    http = None
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("HTTP "):
            http = line.split()[1]
        if line.startswith("SERVING "):
            return proc, http
    proc.terminate()
    raise RuntimeError(f"serve of {model} did not come up")


def complete(http, prompt, speculative):
    body = {"prompt": prompt, "max_tokens": 200, "temperature": 0, "logprobs": 2,
            "ignore_eos": True, "speculative": speculative}
    req = urllib.request.Request(f"http://{http}/v1/completions", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        lp = json.load(r)["choices"][0]["logprobs"]
    return lp["tokens"], lp["top_logprobs"]


def main():
    bin_dir = sys.argv[1]
    models = sys.argv[2:] or [os.path.join(SHARED, m) for m in MODELS]
    print(f"KV cache {KV_TYPE}\n")
    print("| model | prompt | identical 200 tokens | first difference | plain top-1 - top-2 logprob there |")
    print("|---|---|---|---|---|")
    for model in models:
        proc, http = serve(bin_dir, model)
        try:
            for prompt in PROMPTS:
                plain, plain_top = complete(http, prompt, False)
                spec, _ = complete(http, prompt, True)
                name = "BOS" if prompt == [1] else f'"{prompt}"'
                diff = next((i for i, (a, b) in enumerate(zip(plain, spec)) if a != b), None)
                if diff is None and len(plain) == len(spec):
                    print(f"| {os.path.basename(model)} | {name} | yes | - | - |")
                    continue
                top = sorted(plain_top[diff].values(), reverse=True)
                margin = top[0] - top[1] if len(top) > 1 else float("nan")
                print(f"| {os.path.basename(model)} | {name} | no | token {diff} "
                      f"({plain[diff]!r} vs {spec[diff]!r}) | {margin:.2e} |")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
