// shardlm-tokenize MODEL.gguf TEXT: prints the token ids and pieces of TEXT
// under the model's vocabulary (only its tokenizer.ggml.* metadata is read),
// or with --ids just a JSON array of ids for scripts.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/model/gguf.h"
#include "common/tokenizer/tokenizer.h"

namespace shardlm {
namespace {

constexpr char kUsage[] =
    "usage: shardlm-tokenize [--ids] [--no-bos] [--special] MODEL.gguf TEXT\n"
    "\n"
    "Tokenizes TEXT with the vocabulary of MODEL.gguf and prints one line per\n"
    "token: the id and the token's text in the vocabulary (e.g. '\xE2\x96\x81Hello',\n"
    "'<0x0A>'). TEXT '-' reads standard input verbatim (a trailing newline is\n"
    "part of the text).\n"
    "\n"
    "  --ids      print only a JSON array of ids, e.g. [1, 15043]\n"
    "  --no-bos   do not add BOS (nor EOS, if the vocabulary adds one)\n"
    "  --special  parse special-token text such as </s> into its token\n"
    "  --         end of options (for a TEXT that starts with '-')\n"
    "  --help     this message\n";

struct Options {
  std::string model;
  std::string text;
  bool read_stdin = false;
  bool ids_only = false;
  bool add_bos = true;
  bool parse_special = false;
};

// Vocabulary text made printable: control bytes and bytes outside valid
// UTF-8 sequences are shown as \xNN, quotes and backslashes escaped.
std::string Printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    if (c < 0x20 || c == 0x7f) {
      absl::StrAppend(&out, absl::StrFormat("\\x%02X", c));
      ++i;
      continue;
    }
    size_t len = c < 0x80                ? 1
                 : c >= 0xc2 && c < 0xe0 ? 2
                 : c >= 0xe0 && c < 0xf0 ? 3
                 : c >= 0xf0 && c < 0xf5 ? 4
                                         : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      absl::StrAppend(&out, absl::StrFormat("\\x%02X", c));
      ++i;
    }
  }
  return out;
}

// Returns the exit code if main should stop (help or usage error).
int ParseArgs(int argc, char** argv, Options* options) {
  std::vector<std::string> positional;
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (!options_done && arg.size() > 1 && arg[0] == '-') {
      if (arg == "--help" || arg == "-h") {
        std::fputs(kUsage, stdout);
        return 0;
      } else if (arg == "--ids") {
        options->ids_only = true;
      } else if (arg == "--no-bos") {
        options->add_bos = false;
      } else if (arg == "--special") {
        options->parse_special = true;
      } else if (arg == "--") {
        options_done = true;
      } else {
        std::fprintf(stderr, "shardlm-tokenize: unknown option %s\n\n%s", argv[i], kUsage);
        return 2;
      }
      continue;
    }
    positional.emplace_back(arg);
  }
  if (positional.size() != 2) {
    std::fprintf(stderr, "shardlm-tokenize: expected MODEL and TEXT\n\n%s", kUsage);
    return 2;
  }
  options->model = positional[0];
  options->read_stdin = positional[1] == "-";
  options->text = positional[1];
  return -1;
}

int Run(const Options& options) {
  std::string text = options.text;
  if (options.read_stdin) {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  auto gguf = GgufFile::Open(options.model);
  if (!gguf.ok()) {
    std::fprintf(stderr, "shardlm-tokenize: %s\n", gguf.status().ToString().c_str());
    return 1;
  }
  auto tokenizer = Tokenizer::FromGguf(**gguf);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "shardlm-tokenize: %s\n", tokenizer.status().ToString().c_str());
    return 1;
  }
  const Tokenizer& t = **tokenizer;
  const std::vector<int32_t> ids = t.Encode(text, options.add_bos, options.parse_special);
  if (options.ids_only) {
    std::printf("[%s]\n", absl::StrJoin(ids, ", ").c_str());
    return 0;
  }
  for (const int32_t id : ids) {
    std::printf("%6d -> '%s'\n", id, Printable(t.TokenText(id)).c_str());
  }
  return 0;
}

}  // namespace
}  // namespace shardlm

int main(int argc, char** argv) {
  shardlm::Options options;
  const int stop = shardlm::ParseArgs(argc, argv, &options);
  if (stop >= 0) return stop;
  return shardlm::Run(options);
}
