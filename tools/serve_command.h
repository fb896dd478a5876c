// `shardlm serve`: one machine, one command — starts N shardlm-worker
// processes with a balanced layer split and an in-process coordinator on
// loopback, and stops them all on Ctrl-C / SIGTERM.
#ifndef SHARDLM_TOOLS_SERVE_COMMAND_H_
#define SHARDLM_TOOLS_SERVE_COMMAND_H_

namespace shardlm {

int RunServeCommand(int argc, char** argv, int first);

}  // namespace shardlm

#endif  // SHARDLM_TOOLS_SERVE_COMMAND_H_
