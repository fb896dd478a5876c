// `shardlm generate`: streams a generation to stdout, either in this process
// (--model) or from a coordinator (--server).
#ifndef SHARDLM_TOOLS_GENERATE_COMMAND_H_
#define SHARDLM_TOOLS_GENERATE_COMMAND_H_

namespace shardlm {

// argv[first] is the first argument after the subcommand name.
int RunGenerateCommand(int argc, char** argv, int first);

}  // namespace shardlm

#endif  // SHARDLM_TOOLS_GENERATE_COMMAND_H_
