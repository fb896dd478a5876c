// `shardlm`: the user-facing command. Subcommands keep their own flags.
#include <cstdio>
#include <cstring>

#include "tools/generate_command.h"
#include "tools/serve_command.h"

namespace {

constexpr char kUsage[] =
    "usage: shardlm COMMAND [flags]\n\n"
    "Runs Llama-family GGUF models, split across processes.\n\n"
    "commands:\n"
    "  generate   stream a generation from a prompt (in this process or from a server)\n"
    "  serve      start workers and a coordinator on this machine\n\n"
    "`shardlm COMMAND --help` describes a command's flags.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::printf("%s", kUsage);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "generate") == 0) return shardlm::RunGenerateCommand(argc, argv, 2);
  if (std::strcmp(argv[1], "serve") == 0) return shardlm::RunServeCommand(argc, argv, 2);
  std::fprintf(stderr, "shardlm: unknown command '%s'\n\n%s", argv[1], kUsage);
  return 2;
}
