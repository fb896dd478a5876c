// The event-driven HTTP server (common/base/http_server.h) on loopback with
// raw sockets: responses that wait for a wake from another thread, streamed
// bodies, `admit` answering before the body, the caps and the read deadline.
#include "common/base/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace shardlm::testing {
namespace {

// Sends `request` and reads until the server closes (or `timeout_s`).
std::string Exchange(const std::string& address, const std::string& request, int timeout_s = 5) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port));
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "connect failed";
  }
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

// Answers once another thread has called wake (after `delay`).
class Delayed : public HttpExchange {
 public:
  explicit Delayed(HttpWake wake) {
    waker_ = std::thread([this, wake] {
      absl::SleepFor(absl::Milliseconds(100));
      ready_ = true;
      wake();
    });
  }
  ~Delayed() override { waker_.join(); }
  std::optional<HttpResponse> Respond() override {
    ++polls_;
    if (!ready_) return std::nullopt;
    HttpResponse r;
    r.body = "late";
    return r;
  }

 private:
  std::atomic<bool> ready_{false};
  std::atomic<int> polls_{0};
  std::thread waker_;
};

// Streams "0\n1\n2\n", one piece per wake from another thread.
class Counting : public HttpExchange {
 public:
  explicit Counting(HttpWake wake) {
    producer_ = std::thread([this, wake] {
      for (int i = 0; i < 3; ++i) {
        absl::SleepFor(absl::Milliseconds(50));
        {
          std::lock_guard<std::mutex> lock(mu_);
          pending_ += absl::StrCat(i, "\n");
          done_ = i == 2;
        }
        wake();
      }
    });
  }
  ~Counting() override { producer_.join(); }
  std::optional<HttpResponse> Respond() override {
    HttpResponse r;
    r.streamed = true;
    return r;
  }
  bool ReadBody(std::string* out) override {
    std::lock_guard<std::mutex> lock(mu_);
    *out = std::move(pending_);
    pending_.clear();
    return done_;
  }

 private:
  std::mutex mu_;
  std::string pending_;
  bool done_ = false;
  std::thread producer_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpLimits limits;
    limits.max_body_bytes = 1000;
    limits.max_headers = 8;
    limits.read_timeout = absl::Seconds(1);
    HttpRoutes routes;
    routes.admit = [](const HttpRequest& req) -> std::optional<HttpResponse> {
      if (req.path != "/secret") return std::nullopt;
      HttpResponse r;
      r.status = 401;
      r.body = "no";
      return r;
    };
    routes.handle = [this](HttpRequest req, HttpWake wake) -> std::unique_ptr<HttpExchange> {
      if (req.path == "/late") return std::make_unique<Delayed>(std::move(wake));
      if (req.path == "/stream") return std::make_unique<Counting>(std::move(wake));
      ++bodies_;
      HttpResponse r;
      r.body = absl::StrCat("got ", req.body.size());
      return ReadyExchange(std::move(r));
    };
    auto server = HttpServer::Start("127.0.0.1:0", limits, std::move(routes), "test");
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  std::atomic<int> bodies_{0};
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, AResponseWaitsForItsWake) {
  const std::string reply =
      Exchange(server_->address(), "GET /late HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(reply, "HTTP/1.1 200")) << reply;
  EXPECT_TRUE(absl::EndsWith(reply, "late")) << reply;
}

TEST_F(HttpServerTest, AStreamedBodyArrivesInPiecesAndEnds) {
  const std::string reply =
      Exchange(server_->address(), "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(absl::StrContains(reply, "Transfer-Encoding: chunked")) << reply;
  EXPECT_TRUE(absl::StrContains(reply, "0\n")) << reply;
  EXPECT_TRUE(absl::StrContains(reply, "2\n")) << reply;
  EXPECT_TRUE(absl::EndsWith(reply, "0\r\n\r\n")) << reply;  // the last chunk
}

TEST_F(HttpServerTest, AdmitAnswersBeforeTheBodyAndBodiesAreCapped) {
  // The body is never sent: the answer comes from the headers alone.
  std::string reply = Exchange(server_->address(),
                               "POST /secret HTTP/1.1\r\nHost: x\r\nContent-Length: 999\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(reply, "HTTP/1.1 401")) << reply;
  reply = Exchange(server_->address(),
                   "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(reply, "HTTP/1.1 413")) << reply;
  reply = Exchange(server_->address(),
                   "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: "
                   "close\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  EXPECT_TRUE(absl::EndsWith(reply, "got 5")) << reply;
  // A chunked body past the cap (1000) that ends within twice the cap: read
  // and dropped, then 413; nothing handled.
  const int before = bodies_;
  reply = Exchange(server_->address(), "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                                       "chunked\r\nConnection: close\r\n\r\n5dc\r\n" +
                                           std::string(1500, 'a') + "\r\n0\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(reply, "HTTP/1.1 413")) << reply;
  // One that goes on past twice the cap: the connection is closed with no
  // answer, though the body ends (read on, it would have got a 413).
  reply = Exchange(server_->address(), "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                                       "chunked\r\n\r\n7d0\r\n" + std::string(2000, 'a') +
                                           "\r\n7d0\r\n" + std::string(2000, 'a') +
                                           "\r\n0\r\n\r\n");
  EXPECT_EQ(reply, "");
  EXPECT_EQ(bodies_, before);
}

TEST_F(HttpServerTest, HeaderCapsAndNulBytes) {
  std::string many;
  for (int i = 0; i < 9; ++i) many += absl::StrCat("X-", i, ": 1\r\n");
  std::string reply = Exchange(server_->address(), "GET /x HTTP/1.1\r\nHost: x\r\n" + many + "\r\n");
  EXPECT_TRUE(absl::StartsWith(reply, "HTTP/1.1 431")) << reply;
  using namespace std::string_literals;
  reply = Exchange(server_->address(),
                   "GET /x HTTP/1.1\r\nX-A: a\0b\r\nHost: x\r\nConnection: close\r\n\r\n"s);
  EXPECT_TRUE(absl::StartsWith(reply, "HTTP/1.1 400")) << reply;
  reply = Exchange(server_->address(), "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(reply, "HTTP/1.1 200")) << reply;
}

TEST_F(HttpServerTest, ARequestThatNeverCompletesIsClosedAtTheReadDeadline) {
  const absl::Time start = absl::Now();
  const std::string reply = Exchange(server_->address(), "GET /x HTTP/1.1\r\nHost: x\r\n", 10);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(reply, "");
  EXPECT_GE(took, absl::Milliseconds(900));
  EXPECT_LT(took, absl::Seconds(5));  // 1 s deadline, swept every 250 ms; margin for CI
}

}  // namespace
}  // namespace shardlm::testing
