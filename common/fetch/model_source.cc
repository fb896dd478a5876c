#include "common/fetch/model_source.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/fetch/gguf_header_extent.h"
#include "common/fetch/model_cache.h"
#include "common/fetch/range_fetcher.h"
#include "common/model/gguf.h"
#include "common/model/model_config.h"
#include "common/model/tensor_plan.h"

namespace shardlm {
namespace {

// A first guess at the header: small models have headers of a few KiB, a
// 32k-token vocabulary makes ~0.7 MiB; the scan estimates the rest.
constexpr uint64_t kFirstHeaderBytes = 64 << 10;
// Ranges closer than this are fetched as one (GGUF pads tensors to 32 bytes).
constexpr uint64_t kJoinGap = 4096;

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  if (path.empty()) return std::string();
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("--model-token-file ", path, ": cannot read it"));
  }
  std::stringstream text;
  text << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(text.str()));
  if (token.empty() || token.find_first_of(" \r\n\t") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model-token-file ", path, ": expected one token on one line"));
  }
  return token;
}

std::string Mib(uint64_t bytes) { return absl::StrFormat("%.1f MiB", bytes / 1048576.0); }

std::string PartName(const ModelPart& part) {
  switch (part.kind) {
    case ModelPart::kHeader:
      return "header";
    case ModelPart::kAll:
      return "all layers";
    case ModelPart::kLayers:
      return part.last < 0 ? absl::StrCat("layers ", part.first, ":")
                           : absl::StrCat("layers ", part.first, ":", part.last);
  }
  return "";
}

// Fetches `wanted` minus what the cache holds, logging progress.
absl::Status FetchMissing(RangeFetcher* fetcher, ModelCacheEntry* entry,
                          const std::vector<ByteRange>& wanted, const std::string& what,
                          ModelFetchStats* stats, bool announce = true) {
  const std::vector<ByteRange> missing = entry->Missing(wanted);
  const uint64_t want = TotalBytes(MergeRanges(wanted)), need = TotalBytes(missing);
  if (stats != nullptr) {
    stats->to_fetch += need;
    stats->cached += want - need;
  }
  if (need == 0) return absl::OkStatus();
  // The header's rounds are a detail; a stage's tensors are news.
  if (announce) {
    SHARDLM_LOG(kInfo, "%s: fetching %s of %s (%s in %d ranges; %s already cached)",
                fetcher->url(), what, Mib(entry->size()), Mib(need), missing.size(),
                Mib(want - need));
  } else {
    SHARDLM_LOG(kDebug, "%s: fetching %s (%s)", fetcher->url(), what, Mib(need));
  }
  return fetcher->Fetch(
      missing, entry->size(),
      [entry](uint64_t offset, const char* data, size_t n) { return entry->Write(offset, data, n); },
      [entry](const ByteRange& r) { return entry->MarkComplete(r); },
      [&](const FetchProgress& p) {
        if (p.seconds <= 0) return;
        const double rate = p.done / p.seconds;
        if (stats != nullptr) {
          stats->fetched = fetcher->bytes_received();
          stats->rate = rate;
        }
        if (p.done == p.total) return;
        SHARDLM_LOG(kInfo, "%s: %s of %s (%.0f%%), %.1f MiB/s, ETA %.0f s", what, Mib(p.done),
                    Mib(p.total), 100.0 * p.done / p.total, rate / 1048576.0,
                    rate > 0 ? (p.total - p.done) / rate : 0.0);
      });
}

// Makes the header complete in the cache and returns its length (the data
// section's offset): a first guess, then what the bytes so far say it needs.
absl::StatusOr<uint64_t> FetchHeader(RangeFetcher* fetcher, ModelCacheEntry* entry,
                                     ModelFetchStats* stats) {
  uint64_t prefix = std::min(entry->size(), kFirstHeaderBytes);
  for (int round = 0; round < 64; ++round) {
    // Rounds overlap (each asks for the whole prefix): count the header's
    // bytes once, below, not per round.
    RETURN_IF_ERROR(FetchMissing(fetcher, entry, {{0, prefix}}, "the GGUF header", nullptr,
                                 /*announce=*/false));
    std::string bytes;
    RETURN_IF_ERROR(entry->Read(0, prefix, &bytes));
    absl::StatusOr<GgufHeaderExtent> extent = ScanGgufHeader(bytes, entry->size());
    if (!extent.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(fetcher->url(), ": ", extent.status().message()));
    }
    if (extent->complete) {
      if (stats != nullptr) stats->to_fetch += fetcher->bytes_received();
      return extent->bytes;
    }
    if (extent->bytes <= prefix) break;  // the file ends inside its header
    prefix = extent->bytes;
  }
  return absl::DataLossError(absl::StrCat(fetcher->url(), ": the file (", entry->size(),
                                          " bytes) ends inside its GGUF header"));
}

}  // namespace

void AddModelSourceFlags(CliArgs* args, ModelSourceOptions* o) {
  args->AddString("--model-cache-dir", &o->cache_dir,
                  "where a --model URL's bytes are kept (default $XDG_CACHE_HOME/shardlm/models "
                  "or ~/.cache/shardlm/models); a restart reuses them");
  args->AddString("--model-token-file", &o->token_file,
                  "file holding a Bearer token for a private --model URL (e.g. a Hugging Face "
                  "access token)");
  args->AddBool("--model-allow-full-download", &o->allow_full_download,
                "when the --model server ignores Range requests, download the whole file "
                "instead of failing");
  args->AddInt("--model-fetch-parallel", &o->parallel,
               "range requests in flight while fetching a --model URL");
}

std::vector<std::string> ModelSourceArgs(const ModelSourceOptions& o) {
  std::vector<std::string> argv;
  if (!o.cache_dir.empty()) argv.insert(argv.end(), {"--model-cache-dir", o.cache_dir});
  if (!o.token_file.empty()) argv.insert(argv.end(), {"--model-token-file", o.token_file});
  if (o.allow_full_download) argv.push_back("--model-allow-full-download");
  argv.insert(argv.end(), {"--model-fetch-parallel", std::to_string(o.parallel)});
  return argv;
}

bool IsModelUrl(const std::string& model) {
  return absl::StartsWith(model, "http://") || absl::StartsWith(model, "https://") ||
         absl::StartsWith(model, "hf://");
}

absl::StatusOr<std::string> ModelUrlToHttp(const std::string& model) {
  if (absl::StartsWith(model, "http://") || absl::StartsWith(model, "https://")) return model;
  absl::string_view rest = model;
  if (!absl::ConsumePrefix(&rest, "hf://")) {
    return absl::InvalidArgumentError(absl::StrCat("'", model, "' is not a model URL"));
  }
  std::string revision = "main";
  if (const size_t at = rest.rfind('@'); at != absl::string_view::npos) {
    revision = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
  }
  std::vector<absl::string_view> parts = absl::StrSplit(rest, absl::MaxSplits('/', 2));
  const bool ok = parts.size() == 3 && !parts[0].empty() && !parts[1].empty() &&
                  absl::EndsWith(parts[2], ".gguf") && !revision.empty() &&
                  revision.find('/') == std::string::npos &&
                  rest.find_first_of(" ?#") == absl::string_view::npos;
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", model, "' is not hf://OWNER/REPO/FILE.gguf[@REVISION]"));
  }
  return absl::StrCat("https://huggingface.co/", parts[0], "/", parts[1], "/resolve/", revision,
                      "/", parts[2]);
}

absl::StatusOr<std::vector<ByteRange>> ModelPartRanges(const GgufFile& file,
                                                       const ModelConfig& config,
                                                       const ModelPart& part) {
  std::vector<ByteRange> ranges;
  if (part.kind == ModelPart::kHeader) return ranges;
  int first = 0, last = config.n_layer;
  if (part.kind == ModelPart::kLayers) {
    first = part.first;
    if (part.last >= 0) last = part.last;
    if (first < 0 || last > config.n_layer || first >= last) {
      return absl::InvalidArgumentError(absl::StrCat("layer range ", first, ":", last,
                                                     " is not within the model's ",
                                                     config.n_layer, " layers"));
    }
  }
  // The tensors StageWeights::Load binds for [first, last).
  auto wanted = [&](const std::string& name) {
    if (absl::StartsWith(name, "blk.")) {
      int layer = -1;
      const std::vector<std::string> f = absl::StrSplit(name, '.');
      return f.size() > 2 && absl::SimpleAtoi(f[1], &layer) && layer >= first && layer < last;
    }
    if (name == "token_embd.weight") return first == 0 || (last == config.n_layer && config.tied_output);
    if (name == "output_norm.weight" || name == "output.weight") return last == config.n_layer;
    return true;  // rope_freqs and the like: every stage
  };
  for (const PlannedTensor& p : PlanTensors(config)) {
    const GgufTensorInfo* t = file.FindTensor(p.name);
    if (t == nullptr || !wanted(p.name)) continue;  // a missing one: the loader says so
    ranges.push_back({file.data_offset() + t->offset, t->n_bytes});
  }
  return MergeRanges(std::move(ranges), kJoinGap);
}

absl::StatusOr<std::string> ResolveModelPath(const std::string& model, const ModelPart& part,
                                             const ModelSourceOptions& options) {
  if (!IsModelUrl(model)) return model;
  ASSIGN_OR_RETURN(const std::string url, ModelUrlToHttp(model));
  RangeFetcherOptions fo;
  ASSIGN_OR_RETURN(fo.bearer_token, ReadToken(options.token_file));
  fo.user_agent = absl::StrCat("shardlm (", options.client, ")");
  fo.max_parallel = options.parallel;
  ASSIGN_OR_RETURN(std::unique_ptr<RangeFetcher> fetcher, RangeFetcher::Create(url, fo));
  ASSIGN_OR_RETURN(const RemoteFileInfo info, fetcher->Probe());
  const std::string cache_dir =
      options.cache_dir.empty() ? DefaultModelCacheDir() : options.cache_dir;
  ASSIGN_OR_RETURN(std::unique_ptr<ModelCacheEntry> entry,
                   ModelCacheEntry::Open(cache_dir, url, info.size, info.etag));

  if (!info.supports_ranges) {
    if (entry->Missing({{0, info.size}}).empty()) {
      if (options.stats != nullptr) options.stats->done = true;
      return entry->path();
    }
    if (!options.allow_full_download) {
      return absl::FailedPreconditionError(absl::StrCat(
          url, ": the server ignores HTTP Range requests, so this process cannot fetch only "
               "the bytes it reads; pass --model-allow-full-download to download the whole ",
          Mib(info.size), " file instead"));
    }
    SHARDLM_LOG(kWarning, "%s: the server ignores Range requests: downloading the whole %s file",
                url, Mib(info.size));
    if (options.stats != nullptr) options.stats->to_fetch = info.size;
    RETURN_IF_ERROR(fetcher->FetchWhole(
        info.size,
        [&](uint64_t offset, const char* data, size_t n) { return entry->Write(offset, data, n); },
        [&](const FetchProgress& p) {
          if (p.seconds <= 0 || p.done == p.total) return;
          SHARDLM_LOG(kInfo, "whole file: %s of %s (%.0f%%), %.1f MiB/s", Mib(p.done),
                      Mib(p.total), 100.0 * p.done / p.total, p.done / p.seconds / 1048576.0);
          if (options.stats != nullptr) options.stats->fetched = p.done;
        }));
    RETURN_IF_ERROR(entry->MarkComplete({0, info.size}));
    if (options.stats != nullptr) {
      options.stats->fetched = fetcher->bytes_received();
      options.stats->done = true;
    }
    return entry->path();
  }

  ASSIGN_OR_RETURN(const uint64_t header_bytes, FetchHeader(fetcher.get(), entry.get(), options.stats));
  // The full parse and its checks: every tensor inside the size the server
  // gave (a header that disagrees with it is refused here).
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(entry->path());
  if (!file.ok()) {
    return absl::Status(file.status().code(),
                        absl::StrCat(url, " (", info.size, " bytes per the server): ",
                                     file.status().message()));
  }
  if ((*file)->data_offset() != header_bytes && !(*file)->tensors().empty()) {
    return absl::DataLossError(absl::StrCat(url, ": GGUF header length disagreement (",
                                            header_bytes, " vs ", (*file)->data_offset(), ")"));
  }
  std::vector<ByteRange> ranges;
  if (part.kind != ModelPart::kHeader) {
    ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromGguf(**file));
    ASSIGN_OR_RETURN(ranges, ModelPartRanges(**file, config, part));
  }
  file->reset();
  RETURN_IF_ERROR(
      FetchMissing(fetcher.get(), entry.get(), ranges, PartName(part), options.stats));
  if (options.stats != nullptr) {
    options.stats->fetched = fetcher->bytes_received();
    options.stats->done = true;
  }
  SHARDLM_LOG(kInfo, "%s: %s ready in %s (%s fetched by this process)", url, PartName(part),
              entry->path(), Mib(fetcher->bytes_received()));
  return entry->path();
}

}  // namespace shardlm
