#include "common/base/cli_args.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace shardlm {

std::optional<int> CliArgs::ParseForMain(int argc, char** argv, const char* program, int first) {
  if (absl::Status st = Parse(argc, argv, first); !st.ok()) return ExitWithError(program, st, 2);
  if (help_requested()) {
    std::fputs(Usage().c_str(), stdout);
    return 0;
  }
  return std::nullopt;
}

int ExitWithError(const char* program, const absl::Status& status, int exit_code) {
  std::fprintf(stderr, "%s: %s\n", program, std::string(status.message()).c_str());
  return exit_code;
}

void CliArgs::Add(const std::string& names, const std::string& help, bool takes_value,
                  std::string default_text, std::function<absl::Status(const std::string&)> set) {
  Flag f;
  f.names = absl::StrSplit(names, ',');
  f.help = help;
  f.takes_value = takes_value;
  f.default_text = std::move(default_text);
  f.set = std::move(set);
  flags_.push_back(std::move(f));
}

void CliArgs::AddString(const std::string& names, std::string* value, const std::string& help) {
  Add(names, help, true, *value, [value](const std::string& v) {
    *value = v;
    return absl::OkStatus();
  });
}

void CliArgs::AddInt(const std::string& names, int* value, const std::string& help) {
  Add(names, help, true, std::to_string(*value), [value, names](const std::string& v) {
    if (!absl::SimpleAtoi(v, value)) {
      return absl::InvalidArgumentError(absl::StrCat(names, ": '", v, "' is not an integer"));
    }
    return absl::OkStatus();
  });
}

void CliArgs::AddInt64(const std::string& names, int64_t* value, const std::string& help) {
  Add(names, help, true, std::to_string(*value), [value, names](const std::string& v) {
    if (!absl::SimpleAtoi(v, value)) {
      return absl::InvalidArgumentError(absl::StrCat(names, ": '", v, "' is not an integer"));
    }
    return absl::OkStatus();
  });
}

void CliArgs::AddFloat(const std::string& names, float* value, const std::string& help) {
  Add(names, help, true, absl::StrCat(*value), [value, names](const std::string& v) {
    if (!absl::SimpleAtof(v, value) || !std::isfinite(*value)) {
      return absl::InvalidArgumentError(absl::StrCat(names, ": '", v, "' is not a number"));
    }
    return absl::OkStatus();
  });
}

void CliArgs::AddBool(const std::string& names, bool* value, const std::string& help) {
  Add(names, help, false, "", [value](const std::string&) {
    *value = true;
    return absl::OkStatus();
  });
}

void CliArgs::AddStringList(const std::string& names, std::vector<std::string>* value,
                            const std::string& help) {
  Add(names, help + " (repeatable)", true, "", [value](const std::string& v) {
    value->push_back(v);
    return absl::OkStatus();
  });
}

void CliArgs::SetPositional(std::vector<std::string>* positional, const std::string& names) {
  positional_ = positional;
  positional_help_ = names;
}

absl::Status CliArgs::Parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_ = true;
      return absl::OkStatus();
    }
    if (arg.size() < 2 || arg[0] != '-' || arg == "-") {
      if (positional_ == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
      }
      positional_->push_back(arg);
      continue;
    }
    std::string value;
    bool has_inline_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos && arg.rfind("--", 0) == 0) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline_value = true;
    }
    Flag* flag = nullptr;
    for (Flag& f : flags_) {
      for (const std::string& n : f.names) {
        if (n == arg) flag = &f;
      }
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag '", arg, "' (see --help)"));
    }
    if (flag->takes_value && !has_inline_value) {
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(arg, " needs a value"));
      value = argv[++i];
    }
    if (absl::Status st = flag->set(value); !st.ok()) return st;
  }
  return absl::OkStatus();
}

std::string CliArgs::Usage() const {
  std::string out = absl::StrCat("usage: ", usage_, "\n\n", description_, "\n");
  if (!flags_.empty()) out += "\nflags:\n";
  for (const Flag& f : flags_) {
    std::string names = absl::StrJoin(f.names, ", ");
    if (f.takes_value) names += " V";
    absl::StrAppend(&out, "  ", names, std::string(names.size() < 26 ? 26 - names.size() : 1, ' '),
                    f.help);
    if (!f.default_text.empty()) absl::StrAppend(&out, " (default ", f.default_text, ")");
    out += "\n";
  }
  return out;
}

absl::Status ParseByteSize(const std::string& text, int64_t* bytes) {
  if (text.empty()) return absl::InvalidArgumentError("empty size");
  int64_t mult = 1;
  std::string digits = text;
  switch (text.back()) {
    case 'k':
    case 'K':
      mult = int64_t{1} << 10;
      digits.pop_back();
      break;
    case 'm':
    case 'M':
      mult = int64_t{1} << 20;
      digits.pop_back();
      break;
    case 'g':
    case 'G':
      mult = int64_t{1} << 30;
      digits.pop_back();
      break;
    default:
      break;
  }
  int64_t n;
  if (!absl::SimpleAtoi(digits, &n) || n < 0 || n > (int64_t{1} << 50) / mult) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a size like 512M or 2G"));
  }
  *bytes = n * mult;
  return absl::OkStatus();
}

}  // namespace shardlm
