#include "common/fetch/range_fetcher.h"

#include <curl/curl.h>

#include <algorithm>
#include <deque>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"

namespace shardlm {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// "bytes A-B/TOTAL" (TOTAL may be "*"). False when it is not that.
bool ParseContentRange(absl::string_view v, uint64_t* first, uint64_t* last, int64_t* total) {
  v = absl::StripAsciiWhitespace(v);
  if (!absl::ConsumePrefix(&v, "bytes ")) return false;
  std::vector<absl::string_view> span_total = absl::StrSplit(v, '/');
  if (span_total.size() != 2) return false;
  std::vector<absl::string_view> ends = absl::StrSplit(span_total[0], '-');
  if (ends.size() != 2 || !absl::SimpleAtoi(ends[0], first) || !absl::SimpleAtoi(ends[1], last) ||
      *last < *first) {
    return false;
  }
  *total = -1;
  return span_total[1] == "*" || absl::SimpleAtoi(span_total[1], total);
}

// Failures another try may fix: the connection broke or timed out.
bool IsRetryable(CURLcode c) {
  switch (c) {
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

bool IsRetryableHttp(long code) { return code == 408 || code == 429 || code >= 500; }

}  // namespace

absl::Status HttpError(const std::string& url, long code) {
  const std::string what = absl::StrCat(url, ": the server answered HTTP ", code);
  switch (code) {
    case 401:
      return absl::UnauthenticatedError(absl::StrCat(
          what, " Unauthorized: a private or gated model needs an access token "
                "(--model-token-file FILE holding it)"));
    case 403:
      return absl::PermissionDeniedError(absl::StrCat(
          what, " Forbidden: the token (--model-token-file) is not allowed to read this file"));
    case 404:
      return absl::NotFoundError(absl::StrCat(
          what, " Not Found: check the URL (hf://OWNER/REPO/FILE.gguf[@REVISION])"));
    case 416:
      return absl::OutOfRangeError(
          absl::StrCat(what, " Range Not Satisfiable: the file is shorter than expected"));
    default:
      return absl::UnavailableError(what);
  }
}

// One transfer in flight: a range (or the whole file) and the response that
// is arriving for it. Response fields are reset at every status line, since
// redirects (Hugging Face sends its files from a CDN) bring several.
struct RangeFetcher::Transfer {
  ByteRange range;
  bool whole = false;
  uint64_t got = 0;           // bytes of `range` received and written
  uint64_t got_at_start = 0;  // `got` when this try started
  int failures = 0;           // tries in a row that brought nothing
  absl::Time not_before = absl::InfinitePast();
  CURL* easy = nullptr;
  // The response.
  bool checked = false;
  std::string content_range;
  int64_t content_length = -1;
  std::string etag;
  absl::Status fatal;  // not worth retrying: ends the whole fetch
  // Context for the callbacks.
  RangeFetcher* owner = nullptr;
  const Sink* sink = nullptr;
  uint64_t file_size = 0;
  char error[CURL_ERROR_SIZE] = {};

  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
  }

  static size_t OnHeader(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    absl::string_view line(data, size * n);
    if (absl::StartsWith(line, "HTTP/")) {
      t->checked = false;
      t->content_range.clear();
      t->content_length = -1;
      t->etag.clear();
      return size * n;
    }
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) return size * n;
    const std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    const absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
    if (name == "content-range") t->content_range = std::string(value);
    if (name == "etag") t->etag = std::string(value);
    if (name == "content-length" && !absl::SimpleAtoi(value, &t->content_length)) {
      t->content_length = -2;  // present but not a number: never matches
    }
    return size * n;
  }

  // Checks a response's headers against what was asked, before any body
  // byte is used. Non-2xx responses are judged when they end.
  absl::Status CheckResponse(long code) {
    const std::string& url = owner->url_;
    if (whole) {
      if (code != 200) return absl::OkStatus();
      if (content_length >= 0 && static_cast<uint64_t>(content_length) != file_size) {
        return absl::DataLossError(absl::StrCat(url, ": the server's Content-Length ",
                                                content_length, " is not the file's size ",
                                                file_size));
      }
      return absl::OkStatus();
    }
    if (code == 200) {
      return absl::FailedPreconditionError(absl::StrCat(
          url, ": the server ignored the Range request and sent the whole file (HTTP 200)"));
    }
    if (code != 206) return absl::OkStatus();
    uint64_t first = 0, last = 0;
    int64_t total = -1;
    if (!ParseContentRange(content_range, &first, &last, &total)) {
      return absl::DataLossError(absl::StrCat(url, ": a 206 response without a valid "
                                              "Content-Range ('", content_range, "')"));
    }
    const uint64_t want_first = range.offset + got, want_last = range.end() - 1;
    if (first != want_first || last != want_last) {
      return absl::DataLossError(absl::StrCat(url, ": asked for bytes ", want_first, "-",
                                              want_last, ", the server's Content-Range says ",
                                              content_range));
    }
    if (total >= 0 && static_cast<uint64_t>(total) != file_size) {
      return absl::DataLossError(absl::StrCat(
          url, ": the server now gives the file's size as ", total, " bytes, not ", file_size,
          " (the file changed while it was being fetched?)"));
    }
    if (content_length != -1 && content_length != static_cast<int64_t>(last - first + 1)) {
      return absl::DataLossError(absl::StrCat(url, ": the server's Content-Length ",
                                              content_length, " disagrees with its Content-Range ",
                                              content_range, " (", last - first + 1, " bytes)"));
    }
    return absl::OkStatus();
  }

  static size_t OnBody(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t bytes = size * n;
    long code = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code >= 300) return bytes;  // an error page: judged at the end
    if (!t->checked) {
      t->fatal = t->CheckResponse(code);
      if (!t->fatal.ok()) return 0;  // aborts the transfer
      t->checked = true;
    }
    if (bytes > t->range.length - t->got) {
      t->fatal = absl::DataLossError(absl::StrCat(
          t->owner->url_, ": the server sent more than the ", t->range.length,
          " bytes asked for at offset ", t->range.offset));
      return 0;
    }
    t->fatal = (*t->sink)(t->range.offset + t->got, data, bytes);
    if (!t->fatal.ok()) return 0;
    t->got += bytes;
    t->owner->bytes_received_ += bytes;
    return bytes;
  }
};

absl::StatusOr<std::unique_ptr<RangeFetcher>> RangeFetcher::Create(std::string url,
                                                                   RangeFetcherOptions options) {
  if (!absl::StartsWith(url, "http://") && !absl::StartsWith(url, "https://")) {
    return absl::InvalidArgumentError(absl::StrCat("'", url, "' is not an http(s):// URL"));
  }
  if (options.max_parallel < 1 || options.max_attempts < 1 || options.chunk_bytes == 0) {
    return absl::InvalidArgumentError("RangeFetcher: parallelism, attempts and chunk must be > 0");
  }
  GlobalInit();
  return std::unique_ptr<RangeFetcher>(new RangeFetcher(std::move(url), std::move(options)));
}

RangeFetcher::RangeFetcher(std::string url, RangeFetcherOptions options)
    : url_(std::move(url)), options_(std::move(options)) {
  multi_ = curl_multi_init();
  if (!options_.bearer_token.empty()) {
    // libcurl drops custom Authorization headers on a redirect to another
    // host, so the token never reaches a CDN.
    headers_ = curl_slist_append(headers_,
                                 ("Authorization: Bearer " + options_.bearer_token).c_str());
  }
}

RangeFetcher::~RangeFetcher() {
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
  curl_slist_free_all(headers_);
}

void RangeFetcher::Prepare(Transfer* t) {
  if (t->easy == nullptr) t->easy = curl_easy_init();
  CURL* e = t->easy;
  curl_easy_reset(e);
  curl_easy_setopt(e, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers_);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                   std::max(1L, static_cast<long>(absl::ToInt64Seconds(options_.stall_timeout))));
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Transfer::OnHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Transfer::OnBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  t->error[0] = '\0';
  t->checked = false;
  t->got_at_start = t->got;
  if (!t->whole) {
    const std::string range =
        absl::StrCat(t->range.offset + t->got, "-", t->range.end() - 1);
    curl_easy_setopt(e, CURLOPT_RANGE, range.c_str());  // copied by libcurl
  }
}

absl::StatusOr<RemoteFileInfo> RangeFetcher::Probe() {
  Transfer t;
  t.owner = this;
  t.range = {0, 1};
  std::string first_byte;
  Sink keep = [&](uint64_t, const char* data, size_t n) {
    first_byte.append(data, n);
    return absl::OkStatus();
  };
  t.sink = &keep;
  Prepare(&t);
  // The probe accepts a 200 (no Range support): its body is cut short below.
  curl_easy_setopt(t.easy, CURLOPT_WRITEFUNCTION,
                   +[](char*, size_t size, size_t n, void* user) -> size_t {
                     auto* t = static_cast<Transfer*>(user);
                     long code = 0;
                     curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
                     return code == 200 ? 0 : size * n;  // 200: headers are all we need
                   });
  const CURLcode res = curl_easy_perform(t.easy);
  long code = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &code);
  if (code == 206) {
    // Headers first: a body cut short by a lying Content-Length is the
    // server's fault, not the network's.
    uint64_t first = 0, last = 0;
    int64_t total = -1;
    if (ParseContentRange(t.content_range, &first, &last, &total) && t.content_length >= 0 &&
        t.content_length != static_cast<int64_t>(last - first + 1)) {
      return absl::DataLossError(absl::StrCat(url_, ": the server's Content-Length ",
                                              t.content_length, " disagrees with its Content-Range ",
                                              t.content_range, " (", last - first + 1, " bytes)"));
    }
  }
  if (res != CURLE_OK && !(res == CURLE_WRITE_ERROR && code == 200)) {
    return absl::UnavailableError(absl::StrCat(url_, ": ", t.error[0] ? t.error : curl_easy_strerror(res)));
  }
  if (code != 200 && code != 206) return HttpError(url_, code);
  RemoteFileInfo info;
  info.etag = t.etag;
  info.supports_ranges = code == 206;
  if (code == 206) {
    uint64_t first = 0, last = 0;
    int64_t total = -1;
    if (!ParseContentRange(t.content_range, &first, &last, &total) || first != 0 || total <= 0) {
      return absl::DataLossError(absl::StrCat(url_, ": answered bytes=0-0 with Content-Range '",
                                              t.content_range, "': the file's size is unknown"));
    }
    info.size = static_cast<uint64_t>(total);
  } else {
    if (t.content_length <= 0) {
      return absl::DataLossError(absl::StrCat(url_, ": the server gives no Content-Length"));
    }
    info.size = static_cast<uint64_t>(t.content_length);
  }
  return info;
}

absl::Status RangeFetcher::Fetch(const std::vector<ByteRange>& ranges, uint64_t file_size,
                                 const Sink& sink, const RangeDone& done,
                                 const Progress& progress) {
  std::vector<std::unique_ptr<Transfer>> queue;
  for (const ByteRange& r : MergeRanges(ranges)) {
    if (r.end() > file_size) {
      return absl::InvalidArgumentError(absl::StrCat(url_, ": range [", r.offset, ", ", r.end(),
                                                     ") is past the file's end ", file_size));
    }
    for (uint64_t off = r.offset; off < r.end(); off += options_.chunk_bytes) {
      auto t = std::make_unique<Transfer>();
      t->range = {off, std::min(options_.chunk_bytes, r.end() - off)};
      queue.push_back(std::move(t));
    }
  }
  return Run(std::move(queue), file_size, sink, done, progress);
}

absl::Status RangeFetcher::FetchWhole(uint64_t file_size, const Sink& sink,
                                      const Progress& progress) {
  std::vector<std::unique_ptr<Transfer>> queue;
  auto t = std::make_unique<Transfer>();
  t->range = {0, file_size};
  t->whole = true;
  queue.push_back(std::move(t));
  return Run(std::move(queue), file_size, sink, nullptr, progress);
}

absl::Status RangeFetcher::Run(std::vector<std::unique_ptr<Transfer>> queue, uint64_t file_size,
                               const Sink& sink, const RangeDone& done,
                               const Progress& progress) {
  CURLM* multi = static_cast<CURLM*>(multi_);
  std::deque<Transfer*> waiting;
  uint64_t total = 0;
  for (auto& t : queue) {
    t->owner = this;
    t->sink = &sink;
    t->file_size = file_size;
    total += t->range.length;
    waiting.push_back(t.get());
  }
  std::vector<Transfer*> active;
  const absl::Time start = absl::Now();
  absl::Time last_report = start;
  auto done_bytes = [&] {
    uint64_t d = 0;
    for (auto& t : queue) d += t->got;
    return d;
  };
  absl::Status result;
  while (result.ok() && (!waiting.empty() || !active.empty())) {
    const absl::Time now = absl::Now();
    // Start what may start: the queue is FIFO, retries go to its back.
    for (size_t i = 0; i < waiting.size() && active.size() < static_cast<size_t>(options_.max_parallel);) {
      Transfer* t = waiting[i];
      if (t->not_before > now) {
        ++i;
        continue;
      }
      waiting.erase(waiting.begin() + i);
      Prepare(t);
      curl_multi_add_handle(multi, t->easy);
      active.push_back(t);
    }
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      auto it = std::find_if(active.begin(), active.end(),
                             [&](Transfer* t) { return t->easy == msg->easy_handle; });
      if (it == active.end()) continue;
      Transfer* t = *it;
      active.erase(it);
      const CURLcode res = msg->data.result;
      curl_multi_remove_handle(multi, t->easy);
      long code = 0;
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
      if (!t->fatal.ok()) {
        result = t->fatal;
        break;
      }
      std::string why;
      if (res == CURLE_OK && code >= 200 && code < 300) {
        if (!t->checked && t->range.length > 0) {
          // A 2xx without a body: check its headers all the same.
          if (absl::Status st = t->CheckResponse(code); !st.ok()) {
            result = st;
            break;
          }
        }
        if (t->got == t->range.length) {
          if (done && !t->whole) result = done(t->range);
          if (!result.ok()) break;
          continue;
        }
        why = absl::StrCat("the body ended after ", t->got - t->got_at_start, " of ",
                           t->range.length - t->got_at_start, " bytes");
      } else if (res == CURLE_OK) {
        if (!IsRetryableHttp(code)) {
          result = HttpError(url_, code);
          break;
        }
        why = absl::StrCat("HTTP ", code);
      } else if (IsRetryable(res)) {
        why = t->error[0] ? t->error : curl_easy_strerror(res);
      } else {
        result = absl::UnavailableError(
            absl::StrCat(url_, ": ", t->error[0] ? t->error : curl_easy_strerror(res)));
        break;
      }
      // Resume: the next try asks for the rest of the range (a whole-file
      // download cannot resume and starts over).
      if (t->whole) {
        if (t->got > 0) t->failures = 0;
        t->got = 0;
      } else if (t->got > t->got_at_start) {
        t->failures = 0;
      }
      if (++t->failures >= options_.max_attempts) {
        result = absl::DataLossError(absl::StrCat(
            url_, ": bytes ", t->range.offset, "-", t->range.end() - 1, " still incomplete after ",
            t->failures, " tries that brought nothing new (last: ", why, ")"));
        break;
      }
      const absl::Duration backoff =
          std::min(absl::Seconds(5), options_.retry_backoff * (1 << std::min(t->failures - 1, 6)));
      t->not_before = absl::Now() + backoff;
      waiting.push_back(t);
    }
    if (!result.ok()) break;
    if (progress && absl::Now() - last_report >= absl::Seconds(1)) {
      last_report = absl::Now();
      progress({done_bytes(), total, absl::ToDoubleSeconds(last_report - start)});
    }
    if (!active.empty()) {
      curl_multi_poll(multi, nullptr, 0, 100, nullptr);
    } else if (!waiting.empty()) {
      absl::SleepFor(absl::Milliseconds(20));  // every transfer is backing off
    }
  }
  for (Transfer* t : active) curl_multi_remove_handle(multi, t->easy);
  if (result.ok() && progress) {
    progress({done_bytes(), total, absl::ToDoubleSeconds(absl::Now() - start)});
  }
  return result;
}

}  // namespace shardlm
