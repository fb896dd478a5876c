// llama_cpp_tokenize MODEL.gguf TEXT_FILE [RUNS [IDS_OUT]]: times llama.cpp's
// llama_tokenize (add_special, no special parsing; what tokenize_bench's
// BM_Encode does) on a file, single thread, and prints the best of RUNS (5)
// and the token count; IDS_OUT gets the ids, one per line (compare with
// `shardlm-tokenize --ids`). The reference side of bench/tokenize_bench.cc:
//
//   build/bin/tokenize_bench --write_text=/tmp/story.txt
//   llama_cpp_tokenize shared/tokenizer/ggml-vocab-llama-bpe.gguf /tmp/story.txt
//
// Not part of the CMake build: it links node-llama-cpp's prebuilt libllama
// (llama.cpp v0.4.0), like shared/reference/c. After `npm install` in a copy
// of shared/reference (REF below) and cloning its llama.cpp source bundle:
//   git clone REF/node_modules/node-llama-cpp/llama/gitRelease.bundle /tmp/llama-src
//   B=REF/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
//   gcc -O2 bench/llama_cpp_tokenize.c -I/tmp/llama-src/include
//     -I/tmp/llama-src/ggml/include -DNLC_BINS="\"$B\"" -L$B -l:libllama.v0.4.0.so
//     -l:libggml.v0.4.0.so -l:libggml-base.so -Wl,-rpath,$B -o /tmp/llama_cpp_tokenize
//   (one command line)
#include <ggml-backend.h>
#include <llama.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void quiet(enum ggml_log_level level, const char* text, void* data) {
  (void)level;
  (void)text;
  (void)data;
}

static double now(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.gguf TEXT_FILE [RUNS [IDS_OUT]]\n", argv[0]);
    return 2;
  }
  const int runs = argc > 3 ? atoi(argv[3]) : 5;
  // LLAMA_PARSE_SPECIAL=1: parse special-token text (for id comparisons).
  const bool parse_special = getenv("LLAMA_PARSE_SPECIAL") != NULL;
  FILE* f = fopen(argv[2], "rb");
  if (f == NULL) return 1;
  fseek(f, 0, SEEK_END);
  const long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char* text = malloc(size);
  if (fread(text, 1, size, f) != (size_t)size) return 1;
  fclose(f);

  llama_log_set(quiet, NULL);
  ggml_backend_load_all_from_path(NLC_BINS);
  llama_backend_init();
  struct llama_model_params mp = llama_model_default_params();
  mp.vocab_only = true;
  struct llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (model == NULL) return 1;
  const struct llama_vocab* vocab = llama_model_get_vocab(model);
  llama_token* tokens = malloc(sizeof(llama_token) * (size + 16));
  // Wall time and this thread's CPU time (google benchmark's "CPU" column,
  // what tokenize_bench reports bytes/s from), best of the runs each.
  double best = 1e30, best_cpu = 1e30;
  int n = 0;
  for (int r = 0; r < runs; ++r) {
    const double t0 = now(CLOCK_MONOTONIC);
    const double c0 = now(CLOCK_THREAD_CPUTIME_ID);
    n = llama_tokenize(vocab, text, (int32_t)size, tokens, (int32_t)size + 16, true, parse_special);
    const double dt = now(CLOCK_MONOTONIC) - t0;
    const double dc = now(CLOCK_THREAD_CPUTIME_ID) - c0;
    if (dt < best) best = dt;
    if (dc < best_cpu) best_cpu = dc;
  }
  if (argc > 4) {
    FILE* out = fopen(argv[4], "w");
    if (out == NULL) return 1;
    for (int i = 0; i < n; ++i) fprintf(out, "%d\n", tokens[i]);
    fclose(out);
  }
  printf(
      "{\"bytes\": %ld, \"tokens\": %d, \"best_ms\": %.1f, \"best_cpu_ms\": %.1f, "
      "\"mb_per_s_cpu\": %.2f}\n",
      size, n, best * 1e3, best_cpu * 1e3, size / best_cpu / 1e6);
  llama_model_free(model);
  return 0;
}
