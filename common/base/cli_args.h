// A small declarative command-line parser for our binaries: each main()
// declares its flags bound to fields of a plain Options struct, then parses.
// `--help` prints the usage; unknown flags and bad values are errors that
// name the flag. (absl::flags is global state, which does not fit one binary
// with several subcommands.)
#ifndef SHARDLM_COMMON_BASE_CLI_ARGS_H_
#define SHARDLM_COMMON_BASE_CLI_ARGS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace shardlm {

class CliArgs {
 public:
  CliArgs(std::string usage, std::string description)
      : usage_(std::move(usage)), description_(std::move(description)) {}

  // `names` like "--model" or "-n,--max-tokens".
  void AddString(const std::string& names, std::string* value, const std::string& help);
  void AddInt(const std::string& names, int* value, const std::string& help);
  void AddInt64(const std::string& names, int64_t* value, const std::string& help);
  void AddFloat(const std::string& names, float* value, const std::string& help);
  void AddBool(const std::string& names, bool* value, const std::string& help);  // no argument
  void AddStringList(const std::string& names, std::vector<std::string>* value,
                     const std::string& help);  // repeatable
  // Positional arguments are collected here (in order).
  void SetPositional(std::vector<std::string>* positional, const std::string& names_for_help);

  // Parses argv[first..argc). Sets help_requested() on --help / -h.
  absl::Status Parse(int argc, char** argv, int first = 1);
  bool help_requested() const { return help_; }
  std::string Usage() const;
  // Parse for a main(): on an error prints "<program>: <message>" and
  // returns 2, on --help prints the usage and returns 0; nullopt: go on.
  //   if (std::optional<int> exit = args.ParseForMain(argc, argv, "tool")) return *exit;
  std::optional<int> ParseForMain(int argc, char** argv, const char* program, int first = 1);

 private:
  struct Flag {
    std::vector<std::string> names;
    std::string help;
    bool takes_value = true;
    std::string default_text;
    std::function<absl::Status(const std::string&)> set;
  };
  void Add(const std::string& names, const std::string& help, bool takes_value,
           std::string default_text, std::function<absl::Status(const std::string&)> set);

  std::string usage_, description_;
  std::vector<Flag> flags_;
  std::vector<std::string>* positional_ = nullptr;
  std::string positional_help_;
  bool help_ = false;
};

// Prints "<program>: <message of status>" to stderr and returns
// `exit_code`, for main()s: `return ExitWithError("tool", st, 1);`.
int ExitWithError(const char* program, const absl::Status& status, int exit_code);

// Parses sizes like "512M", "2G", "1048576" (binary units).
absl::Status ParseByteSize(const std::string& text, int64_t* bytes);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_BASE_CLI_ARGS_H_
