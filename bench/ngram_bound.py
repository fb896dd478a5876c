#!/usr/bin/env python3
"""Upper bound of prompt-lookup (n-gram) speculation on a known greedy text.

Replays a golden greedy continuation (llama.cpp's, from ../shared/golden) as
if it were being generated, and at each pass drafts K tokens from earlier
occurrences of the text's last n tokens (n = NMAX..1, prompt + generated so
far). A pass emits the accepted draft prefix plus the one token the
verification produces. Two drafters:

  last    the most recent occurrence of the longest matching n-gram (what
          --spec-ngram does);
  oracle  every occurrence of every n-gram, the best one chosen with
          hindsight (a bound for any tree or multi-candidate variant).

Tokens per pass bounds the speed-up when a pass with K drafts costs what a
plain pass costs (tiny models on loopback, where messages dominate).

  bench/ngram_bound.py [GOLDEN.json] [K ...]
"""
import json
import os
import sys

NMAX = 6


def accepted(draft, text, i):
    a = 0
    while a < len(draft) and i + a < len(text) and draft[a] == text[i + a]:
        a += 1
    return a


def tokens_per_pass(text, start, k, oracle):
    i, passes = start, 0
    while i < len(text):
        drafts = []
        for n in range(min(NMAX, i), 0, -1):
            suffix = text[i - n:i]
            hits = [j for j in range(i - n) if text[j:j + n] == suffix]
            if not hits:
                continue
            if oracle:
                drafts += [text[j + n:j + n + k] for j in hits]
            else:
                drafts = [text[hits[-1] + n:hits[-1] + n + k]]
                break
        best = max((accepted(d, text, i) for d in drafts), default=0)
        i += best + 1
        passes += 1
    return (len(text) - start) / passes


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    golden = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "..", "shared", "golden", "stories260K.bos.json")
    ks = [int(a) for a in sys.argv[2:]] or [4, 8, 16]
    with open(golden) as f:
        g = json.load(f)
    text = g["prompt_tokens"] + g["greedy_tokens"]
    start = len(g["prompt_tokens"])
    print(f"{os.path.basename(golden)}: {len(text) - start} greedy tokens after "
          f"{start} prompt tokens, n-grams of 1..{NMAX}")
    print("| K | last n-gram (tokens/pass) | oracle over all matches (tokens/pass) |")
    print("|---|---|---|")
    for k in ks:
        print(f"| {k} | {tokens_per_pass(text, start, k, False):.3f} | "
              f"{tokens_per_pass(text, start, k, True):.3f} |")


if __name__ == "__main__":
    main()
