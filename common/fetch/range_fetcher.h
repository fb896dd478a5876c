// Downloads byte ranges of one HTTP(S) file with Range requests: a few at
// once over libcurl's multi interface (one thread, no pool), each response
// checked against what was asked (206, Content-Range, Content-Length, the
// file's size), and a range whose connection drops resumed from the byte
// where it stopped. Bytes go to a caller's sink as they arrive; a range is
// reported done only once all its bytes were received and checked.
#ifndef SHARDLM_COMMON_FETCH_RANGE_FETCHER_H_
#define SHARDLM_COMMON_FETCH_RANGE_FETCHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/fetch/byte_range.h"

struct curl_slist;  // libcurl's, kept out of this header

namespace shardlm {

struct RangeFetcherOptions {
  std::string bearer_token;  // sent as "Authorization: Bearer ..." when non-empty
  std::string user_agent = "shardlm";
  int max_parallel = 4;         // transfers in flight at once
  int max_attempts = 6;         // tries of one range in a row that bring no new byte
  absl::Duration retry_backoff = absl::Milliseconds(100);  // doubled per failed try, cap 5 s
  absl::Duration connect_timeout = absl::Seconds(30);
  absl::Duration stall_timeout = absl::Seconds(60);  // no byte for this long: retry
  uint64_t chunk_bytes = 8 << 20;  // longer ranges are split so they run in parallel
};

struct RemoteFileInfo {
  uint64_t size = 0;
  std::string etag;             // empty when the server sends none
  bool supports_ranges = false;  // answered a Range request with 206
};

struct FetchProgress {
  uint64_t done = 0;   // bytes received in this Fetch
  uint64_t total = 0;  // bytes this Fetch asked for
  double seconds = 0;  // since it started
};

class RangeFetcher {
 public:
  // Writes `n` bytes that belong at `offset` of the file.
  using Sink = std::function<absl::Status(uint64_t offset, const char* data, size_t n)>;
  // Called once per range (a chunk of one asked for) whose every byte came.
  using RangeDone = std::function<absl::Status(const ByteRange& range)>;
  using Progress = std::function<void(const FetchProgress&)>;

  // `url`: http:// or https://. INVALID_ARGUMENT for anything else.
  static absl::StatusOr<std::unique_ptr<RangeFetcher>> Create(std::string url,
                                                              RangeFetcherOptions options);
  ~RangeFetcher();

  // Asks for byte 0 with a Range request: the file's size, ETag and whether
  // the server honours ranges. NOT_FOUND (404), UNAUTHENTICATED (401),
  // PERMISSION_DENIED (403), UNAVAILABLE (cannot connect) name the URL.
  absl::StatusOr<RemoteFileInfo> Probe();

  // Fetches `ranges` of a file of `file_size` bytes (from Probe). Stops at
  // the first error that retrying cannot fix; a range that keeps failing ends
  // with DATA_LOSS after max_attempts. `progress` is called about once a
  // second.
  absl::Status Fetch(const std::vector<ByteRange>& ranges, uint64_t file_size, const Sink& sink,
                     const RangeDone& done, const Progress& progress = nullptr);

  // Fetches the whole file without Range (for servers that ignore it): a
  // dropped connection starts over. The body must be exactly `file_size`.
  absl::Status FetchWhole(uint64_t file_size, const Sink& sink, const Progress& progress = nullptr);

  const std::string& url() const { return url_; }
  // Body bytes received by this fetcher so far, retries included.
  uint64_t bytes_received() const { return bytes_received_; }

 private:
  struct Transfer;
  RangeFetcher(std::string url, RangeFetcherOptions options);
  absl::Status Run(std::vector<std::unique_ptr<Transfer>> queue, uint64_t file_size,
                   const Sink& sink, const RangeDone& done, const Progress& progress);
  void Prepare(Transfer* t);

  std::string url_;
  RangeFetcherOptions options_;
  void* multi_ = nullptr;         // CURLM*
  curl_slist* headers_ = nullptr;
  uint64_t bytes_received_ = 0;
};

// "HTTP 404 Not Found"-style status for a final response code, with advice.
absl::Status HttpError(const std::string& url, long code);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_FETCH_RANGE_FETCHER_H_
