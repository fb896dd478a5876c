// common/fetch: byte-range arithmetic, hf:// URLs, the GGUF header scan,
// RangeFetcher against a local server with fault modes (drops, no Range
// support, a lying Content-Length, 404, 401) and ResolveModelPath: a stage
// fetches only its own tensors, a second start fetches nothing.
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/match.h"
#include "common/fetch/byte_range.h"
#include "common/fetch/gguf_header_extent.h"
#include "common/fetch/model_cache.h"
#include "common/fetch/model_source.h"
#include "common/fetch/range_fetcher.h"
#include "common/model/gguf.h"
#include "common/model/layer_split.h"
#include "common/model/model_config.h"
#include "gtest/gtest.h"
#include "tests/fetch/range_server.h"
#include "tests/test_data.h"

namespace shardlm {
namespace {

using testing::TempDir;
using testing::TestDataPath;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A file of `n` pseudo-random bytes in a fresh folder.
std::string RandomFile(size_t n, std::string* bytes) {
  std::mt19937 rng(42);
  bytes->resize(n);
  for (char& c : *bytes) c = static_cast<char>(rng());
  const std::string path = TempDir() + "/blob.bin";
  std::ofstream(path, std::ios::binary).write(bytes->data(), static_cast<std::streamsize>(n));
  return path;
}

TEST(ByteRangeTest, MergeJoinsOverlapsAndSmallGaps) {
  EXPECT_EQ(MergeRanges({{10, 5}, {0, 5}, {3, 4}, {20, 0}}),
            (std::vector<ByteRange>{{0, 7}, {10, 5}}));
  EXPECT_EQ(MergeRanges({{0, 5}, {8, 2}}, 3), (std::vector<ByteRange>{{0, 10}}));
  EXPECT_EQ(MergeRanges({{0, 5}, {9, 2}}, 3), (std::vector<ByteRange>{{0, 5}, {9, 2}}));
}

TEST(ByteRangeTest, SubtractLeavesWhatIsMissing) {
  EXPECT_EQ(SubtractRanges({{0, 100}}, {{10, 10}, {50, 100}}),
            (std::vector<ByteRange>{{0, 10}, {20, 30}}));
  EXPECT_TRUE(SubtractRanges({{5, 5}}, {{0, 100}}).empty());
  EXPECT_EQ(SubtractRanges({{0, 10}, {20, 10}}, {}), (std::vector<ByteRange>{{0, 10}, {20, 10}}));
  EXPECT_EQ(TotalBytes({{0, 10}, {20, 5}}), 15u);
}

TEST(ModelCacheTest, OnlyCompleteWellFormedLinesCount) {
  const std::string dir = TempDir();
  auto entry = ModelCacheEntry::Open(dir, "http://h/x/m.gguf", 1000, "\"e1\"");
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_TRUE(absl::EndsWith((*entry)->path(), "/m.gguf"));
  EXPECT_TRUE((*entry)->Complete().empty());
  ASSERT_TRUE((*entry)->Write(990, "0123456789", 10).ok());
  EXPECT_FALSE((*entry)->Write(995, "0123456789", 10).ok());  // past the end
  ASSERT_TRUE((*entry)->MarkComplete({990, 10}).ok());
  ASSERT_TRUE((*entry)->MarkComplete({0, 100}).ok());
  const std::string manifest = (*entry)->path().substr(0, (*entry)->path().rfind('/')) + "/ranges";
  // A torn last line (a crash mid-append) and a range past the end: ignored.
  std::ofstream(manifest, std::ios::app) << "100 900 ok\n200 5000 ok\n300 10";
  EXPECT_EQ((*entry)->Complete(), (std::vector<ByteRange>{{0, 1000}}));
  std::ofstream(manifest, std::ios::trunc) << "# header\n990 10 ok\n0 100 ok\n300 10";
  EXPECT_EQ((*entry)->Missing({{0, 1000}}), (std::vector<ByteRange>{{100, 890}}));
  // Another ETag (a new revision) is another entry.
  auto other = ModelCacheEntry::Open(dir, "http://h/x/m.gguf", 1000, "\"e2\"");
  ASSERT_TRUE(other.ok());
  EXPECT_NE((*other)->path(), (*entry)->path());
  EXPECT_TRUE((*other)->Complete().empty());
}

TEST(ModelUrlTest, HuggingFaceShorthand) {
  EXPECT_EQ(*ModelUrlToHttp("hf://TheBloke/TinyLlama-GGUF/tinyllama.Q4_0.gguf"),
            "https://huggingface.co/TheBloke/TinyLlama-GGUF/resolve/main/tinyllama.Q4_0.gguf");
  EXPECT_EQ(*ModelUrlToHttp("hf://o/r/sub/dir/m.gguf@v1.0"),
            "https://huggingface.co/o/r/resolve/v1.0/sub/dir/m.gguf");
  EXPECT_EQ(*ModelUrlToHttp("http://127.0.0.1:8/m.gguf"), "http://127.0.0.1:8/m.gguf");
  for (const char* bad : {"hf://o/m.gguf", "hf://o/r/m.bin", "hf://o/r/m.gguf@", "ftp://x/m.gguf",
                          "hf:///r/m.gguf"}) {
    EXPECT_FALSE(ModelUrlToHttp(bad).ok()) << bad;
  }
  EXPECT_TRUE(IsModelUrl("hf://o/r/m.gguf"));
  EXPECT_TRUE(IsModelUrl("https://x/m.gguf"));
  EXPECT_FALSE(IsModelUrl("/models/m.gguf"));
}

TEST(GgufHeaderExtentTest, FindsTheDataOffsetFromAPrefix) {
  const std::string path = TestDataPath("models/mini-shape-q4_0.gguf");
  const std::string bytes = ReadAll(path);
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const uint64_t data_offset = (*file)->data_offset();
  auto whole = ScanGgufHeader(bytes, bytes.size());
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_TRUE(whole->complete);
  EXPECT_EQ(whole->bytes, data_offset);
  // Short prefixes (the tensor table ends at most `alignment` bytes before
  // the data): not complete, and the estimate asks for more, but not
  // far past the header (the vocabulary's average token size predicts it).
  for (size_t prefix : {size_t{0}, size_t{10}, size_t{4096}, size_t{200000}, size_t{data_offset - 64}}) {
    auto part = ScanGgufHeader(std::string_view(bytes).substr(0, prefix), bytes.size());
    ASSERT_TRUE(part.ok()) << part.status();
    EXPECT_FALSE(part->complete) << prefix;
    EXPECT_GT(part->bytes, prefix);
    if (prefix >= 200000) {
      EXPECT_LT(part->bytes, data_offset + data_offset / 10) << prefix;
    }
  }
  std::string bad = bytes.substr(0, 1000);
  bad[0] = 'X';
  EXPECT_FALSE(ScanGgufHeader(bad, bytes.size()).ok());
}

TEST(GgufHeaderExtentTest, ImpossibleCountsAreErrorsNotRequestsForMore) {
  // "GGUF", v3, 0 tensors, 1 kv: key "k", an array of 2^60 strings.
  std::string h = "GGUF";
  auto put = [&h](auto v) { h.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  put(uint32_t{3});
  put(uint64_t{0});
  put(uint64_t{1});
  put(uint64_t{1});
  h += "k";
  put(uint32_t{9});
  put(uint32_t{8});
  put(uint64_t{1} << 60);
  auto extent = ScanGgufHeader(h, 1 << 20);
  EXPECT_EQ(extent.status().code(), absl::StatusCode::kInvalidArgument) << extent.status();
}

TEST(ModelPartRangesTest, StagesTogetherCoverEveryTensorOnce) {
  auto file = GgufFile::Open(TestDataPath("models/mini-shape-q4_0.gguf"));
  ASSERT_TRUE(file.ok()) << file.status();
  auto config = ModelConfig::FromGguf(**file);
  ASSERT_TRUE(config.ok());
  auto all = ModelPartRanges(**file, *config, ModelPart::All());
  ASSERT_TRUE(all.ok());
  uint64_t tensors = 0;
  for (const GgufTensorInfo& t : (*file)->tensors()) tensors += t.n_bytes;
  EXPECT_GE(TotalBytes(*all), tensors);  // joined across padding
  EXPECT_LT(TotalBytes(*all), tensors + 4096 * (*file)->tensors().size());
  std::vector<ByteRange> parts;
  for (auto [first, last] : {std::pair{0, 1}, {1, 3}, {3, 4}}) {
    auto r = ModelPartRanges(**file, *config, ModelPart::Layers(first, last));
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(SubtractRanges(*r, *all).empty());
    parts.insert(parts.end(), r->begin(), r->end());
  }
  EXPECT_TRUE(SubtractRanges(*all, parts).empty()) << "a tensor no stage fetches";
  EXPECT_TRUE(ModelPartRanges(**file, *config, ModelPart::Header())->empty());
  EXPECT_FALSE(ModelPartRanges(**file, *config, ModelPart::Layers(2, 9)).ok());
}

TEST(RangeFetcherTest, ProbesAndFetchesRangesInParallel) {
  std::string bytes;
  const std::string path = RandomFile(3 << 20, &bytes);
  auto server = RangeServer::Start(path);
  ASSERT_NE(server, nullptr);
  RangeFetcherOptions fo;
  fo.chunk_bytes = 256 << 10;  // many chunks: several in flight
  auto fetcher = RangeFetcher::Create(server->url(), fo);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  auto info = (*fetcher)->Probe();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, bytes.size());
  EXPECT_TRUE(info->supports_ranges);
  EXPECT_FALSE(info->etag.empty());

  std::string got(bytes.size(), '\0');
  std::vector<ByteRange> done;
  const std::vector<ByteRange> want = {{100, 1 << 20}, {2 << 20, 777}, {(3 << 20) - 5, 5}};
  absl::Status st = (*fetcher)->Fetch(
      want, info->size,
      [&](uint64_t off, const char* d, size_t n) {
        got.replace(off, n, d, n);
        return absl::OkStatus();
      },
      [&](const ByteRange& r) {
        done.push_back(r);
        return absl::OkStatus();
      });
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(MergeRanges(done), MergeRanges(want));
  for (const ByteRange& r : want) {
    EXPECT_EQ(got.substr(r.offset, r.length), bytes.substr(r.offset, r.length));
  }
  EXPECT_EQ(server->TotalServed(), 1u + TotalBytes(want));  // the probe's byte + the ranges
}

TEST(RangeFetcherTest, ResumesRangesWhoseConnectionDrops) {
  std::string bytes;
  const std::string path = RandomFile(1 << 20, &bytes);
  auto server = RangeServer::Start(path, {"--drop-after", "100000"});
  ASSERT_NE(server, nullptr);
  RangeFetcherOptions fo;
  fo.retry_backoff = absl::Milliseconds(5);
  auto fetcher = RangeFetcher::Create(server->url(), fo);
  ASSERT_TRUE(fetcher.ok());
  std::string got(bytes.size(), '\0');
  int done = 0;
  absl::Status st = (*fetcher)->Fetch(
      {{0, bytes.size()}}, bytes.size(),
      [&](uint64_t off, const char* d, size_t n) {
        got.replace(off, n, d, n);
        return absl::OkStatus();
      },
      [&](const ByteRange&) {
        ++done;
        return absl::OkStatus();
      });
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(done, 1);
  EXPECT_TRUE(got == bytes);
  // Each retry asked for the remainder only: nothing was served twice.
  EXPECT_EQ(server->TotalServed(), bytes.size());
}

absl::Status FetchAll(const std::string& url, uint64_t size, RangeFetcherOptions fo = {}) {
  fo.retry_backoff = absl::Milliseconds(5);
  auto fetcher = RangeFetcher::Create(url, fo);
  if (!fetcher.ok()) return fetcher.status();
  return (*fetcher)->Fetch(
      {{0, size}}, size, [](uint64_t, const char*, size_t) { return absl::OkStatus(); },
      [](const ByteRange&) { return absl::OkStatus(); });
}

TEST(RangeFetcherTest, ClearErrorsForBadServers) {
  std::string bytes;
  const std::string path = RandomFile(200000, &bytes);
  {
    auto server = RangeServer::Start(path, {"--ignore-range"});
    ASSERT_NE(server, nullptr);
    auto fetcher = RangeFetcher::Create(server->url(), {});
    auto info = (*fetcher)->Probe();
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_FALSE(info->supports_ranges);
    EXPECT_EQ(info->size, bytes.size());
    absl::Status st = FetchAll(server->url(), bytes.size());
    EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
    EXPECT_TRUE(absl::StrContains(st.message(), "ignored the Range request")) << st;
  }
  {
    auto server = RangeServer::Start(path, {"--lie-content-length"});
    ASSERT_NE(server, nullptr);
    absl::Status st = FetchAll(server->url(), bytes.size());
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
    EXPECT_TRUE(absl::StrContains(st.message(), "Content-Length")) << st;
  }
  {
    auto server = RangeServer::Start(path, {"--status", "404"});
    ASSERT_NE(server, nullptr);
    auto fetcher = RangeFetcher::Create(server->url(), {});
    auto info = (*fetcher)->Probe();
    EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound) << info.status();
    EXPECT_TRUE(absl::StrContains(info.status().message(), "404")) << info.status();
  }
  {
    auto server = RangeServer::Start(path, {"--token", "s3cret"});
    ASSERT_NE(server, nullptr);
    auto info = (*RangeFetcher::Create(server->url(), {}))->Probe();
    EXPECT_EQ(info.status().code(), absl::StatusCode::kUnauthenticated) << info.status();
    EXPECT_TRUE(absl::StrContains(info.status().message(), "--model-token-file"));
    RangeFetcherOptions fo;
    fo.bearer_token = "s3cret";
    EXPECT_TRUE(FetchAll(server->url(), bytes.size(), fo).ok());
  }
  {
    // A server that keeps failing (503): retried, then given up after
    // max_attempts tries that brought nothing.
    auto server = RangeServer::Start(path, {"--status", "503"});
    ASSERT_NE(server, nullptr);
    RangeFetcherOptions fo;
    fo.max_attempts = 3;
    absl::Status st = FetchAll(server->url(), bytes.size(), fo);
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
    EXPECT_TRUE(absl::StrContains(st.message(), "after 3 tries")) << st;
  }
  // Nobody listening.
  auto refused = RangeFetcher::Create("http://127.0.0.1:1/m.gguf", {});
  EXPECT_EQ((*refused)->Probe().status().code(), absl::StatusCode::kUnavailable);
}

// The bytes `part` reads of the model at `path`, read from `file_path`.
std::string PartBytes(const std::string& path, const std::vector<ByteRange>& ranges) {
  const std::string all = ReadAll(path);
  std::string out;
  for (const ByteRange& r : ranges) out += all.substr(r.offset, r.length);
  return out;
}

TEST(ResolveModelPathTest, AStageFetchesOnlyItsOwnTensorsAndReusesTheCache) {
  const std::string model = TestDataPath("models/mini-shape-q4_0.gguf");
  auto file = GgufFile::Open(model);
  ASSERT_TRUE(file.ok()) << file.status();
  auto config = ModelConfig::FromGguf(**file);
  ASSERT_TRUE(config.ok());
  auto split = BalancedLayerRanges(**file, config->n_layer, 3);
  ASSERT_TRUE(split.ok());
  auto server = RangeServer::Start(model);
  ASSERT_NE(server, nullptr);
  const uint64_t header = (*file)->data_offset();

  for (auto [first, last] : *split) {
    ModelSourceOptions so;
    so.cache_dir = TempDir();  // a cache of its own: it fetches its header too
    so.client = "stage " + std::to_string(first);
    const ModelPart part = ModelPart::Layers(first, last);
    auto ranges = ModelPartRanges(**file, *config, part);
    ASSERT_TRUE(ranges.ok()) << ranges.status();
    auto local = ResolveModelPath(server->url(), part, so);
    ASSERT_TRUE(local.ok()) << local.status();
    EXPECT_EQ(PartBytes(*local, *ranges), PartBytes(model, *ranges)) << first;
    EXPECT_EQ(ReadAll(*local).substr(0, header), ReadAll(model).substr(0, header));
    const uint64_t served = server->Stats()["shardlm (stage " + std::to_string(first) + ")"];
    const uint64_t own = TotalBytes(*ranges) + header;
    EXPECT_LT(served, own + own / 20) << "stage " << first << ":" << last;
    EXPECT_LT(own, (*file)->file_size() * 3 / 4) << "a stage's share, not the whole file";
    // A restart finds everything in the cache: one probe byte, nothing more.
    auto again = ResolveModelPath(server->url(), part, so);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(*again, *local);
    EXPECT_EQ(server->Stats()["shardlm (stage " + std::to_string(first) + ")"], served + 1);
    // The loader accepts the sparse file.
    EXPECT_TRUE(GgufFile::Open(*local).ok());
  }
}

TEST(ResolveModelPathTest, AnInterruptedFetchResumesFromTheManifest) {
  const std::string model = TestDataPath("models/mini-shape-q4_0.gguf");
  auto server = RangeServer::Start(model, {"--drop-after", "1048576"});
  ASSERT_NE(server, nullptr);
  ModelSourceOptions so;
  so.cache_dir = TempDir();
  so.client = "all";
  auto local = ResolveModelPath(server->url(), ModelPart::All(), so);
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_TRUE(ReadAll(*local) == ReadAll(model));
  const uint64_t first_run = server->Stats()["shardlm (all)"];
  EXPECT_LT(first_run, ReadAll(model).size() + 4096);

  // Forget the second half of the manifest: only those bytes are fetched again.
  const std::string manifest = local->substr(0, local->rfind('/')) + "/ranges";
  std::string text = ReadAll(manifest);
  std::ofstream(manifest, std::ios::trunc) << text.substr(0, text.find('\n') + 1);
  auto again = ResolveModelPath(server->url(), ModelPart::All(), so);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_GT(server->Stats()["shardlm (all)"], first_run + 1);
  EXPECT_TRUE(ReadAll(*again) == ReadAll(model));
}

TEST(ResolveModelPathTest, NoRangeSupportNeedsTheFullDownloadFlag) {
  const std::string model = TestDataPath("models/stories260K.gguf");
  auto server = RangeServer::Start(model, {"--ignore-range"});
  ASSERT_NE(server, nullptr);
  ModelSourceOptions so;
  so.cache_dir = TempDir();
  auto refused = ResolveModelPath(server->url(), ModelPart::Layers(0, 1), so);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "--model-allow-full-download"))
      << refused.status();
  so.allow_full_download = true;
  auto local = ResolveModelPath(server->url(), ModelPart::Layers(0, 1), so);
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_TRUE(ReadAll(*local) == ReadAll(model));
}

TEST(ResolveModelPathTest, AHeaderThatDisagreesWithTheSizeIsRefused) {
  // The first 60% of a model served as if it were the file: its tensor table
  // points past the end.
  const std::string whole = ReadAll(TestDataPath("models/stories260K.gguf"));
  const std::string path = TempDir() + "/cut.gguf";
  std::ofstream(path, std::ios::binary) << whole.substr(0, whole.size() * 6 / 10);
  auto server = RangeServer::Start(path);
  ASSERT_NE(server, nullptr);
  ModelSourceOptions so;
  so.cache_dir = TempDir();
  auto local = ResolveModelPath(server->url(), ModelPart::Header(), so);
  EXPECT_EQ(local.status().code(), absl::StatusCode::kDataLoss) << local.status();
  EXPECT_TRUE(absl::StrContains(local.status().message(), "bytes per the server"))
      << local.status();
}

TEST(ResolveModelPathTest, ATokenFileOpensAPrivateModel) {
  const std::string model = TestDataPath("models/stories260K.gguf");
  auto server = RangeServer::Start(model, {"--token", "hf_s3cret"});
  ASSERT_NE(server, nullptr);
  ModelSourceOptions so;
  so.cache_dir = TempDir();
  auto refused = ResolveModelPath(server->url(), ModelPart::Header(), so);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated) << refused.status();
  so.token_file = TempDir() + "/token";
  auto missing = ResolveModelPath(server->url(), ModelPart::Header(), so);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "--model-token-file"));
  std::ofstream(so.token_file) << "hf_s3cret\n";
  auto local = ResolveModelPath(server->url(), ModelPart::All(), so);
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_TRUE(ReadAll(*local) == ReadAll(model));
}

TEST(ResolveModelPathTest, LocalPathsAreUntouched) {
  auto p = ResolveModelPath("/no/such/model.gguf", ModelPart::All(), {});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, "/no/such/model.gguf");
}

}  // namespace
}  // namespace shardlm
