// Transport security and client authentication, with real certificates
// made by `openssl` in a temporary folder (a CA, a server certificate for
// 127.0.0.1/localhost, the coordinator's client certificate, and a second,
// unrelated CA with a client certificate of its own):
// - a shardlm-worker process with mutual TLS refuses coordinators without a
//   client certificate or with one from another CA, serves one with the
//   right certificate, and answers SERVING on its plaintext health port;
// - a TLS coordinator (in process) refuses plaintext clients and clients
//   that trust another CA, answers UNAUTHENTICATED without the right bearer
//   token (never echoing it), and streams a greedy generation with it.
// Everything binds 127.0.0.1.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/rpc/credentials.h"
#include "common/rpc/grpc_settings.h"
#include "common/base/subprocess.h"
#include "coordinator/coordinator_server.h"
#include "coordinator/chain.h"
#include "coordinator/pipeline.h"
#include "coordinator/remote_stage.h"
#include "shardlm/v1/shardlm.grpc.pb.h"
#include "tests/test_data.h"

namespace shardlm::testing {
namespace {

constexpr char kToken[] = "tok-3f9a1c77e2";

std::string Model() { return TestDataPath("models/stories260K.gguf"); }

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// Certificates for the whole suite, made once.
struct Pki {
  std::string dir;
  std::string Path(const std::string& name) const { return dir + "/" + name; }
};

const Pki& Certificates() {
  static const Pki* pki = [] {
    auto* p = new Pki{TempDir() + "/pki"};
    const std::string d = p->dir;
    EXPECT_EQ(std::system(absl::StrCat("mkdir -p ", d).c_str()), 0);
    WriteFile(d + "/openssl.cnf",
              "[req]\ndistinguished_name = dn\n[dn]\n"
              "[ca]\nbasicConstraints = critical,CA:TRUE\n"
              "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n"
              "[server]\nbasicConstraints = CA:FALSE\n"
              "subjectAltName = IP:127.0.0.1,DNS:localhost\n"
              "extendedKeyUsage = serverAuth,clientAuth\n"
              "[client]\nbasicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n");
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    auto ca = [&](const std::string& name) {
      return absl::StrCat("openssl req -x509 ", key, " -keyout ", name, ".key -out ", name,
                          ".crt -days 2 -subj /CN=", name, " -config openssl.cnf -extensions ca");
    };
    auto leaf = [&](const std::string& name, const std::string& ca_name, const std::string& ext) {
      return absl::StrCat("openssl req -new ", key, " -keyout ", name, ".key -out ", name,
                          ".csr -subj /CN=", name, " -config openssl.cnf && openssl x509 -req -in ",
                          name, ".csr -CA ", ca_name, ".crt -CAkey ", ca_name,
                          ".key -CAcreateserial -days 2 -out ", name,
                          ".crt -extfile openssl.cnf -extensions ", ext);
    };
    const std::string script =
        absl::StrCat("cd ", d, " && (", ca("ca"), " && ", ca("other-ca"), " && ",
                     leaf("server", "ca", "server"), " && ", leaf("coordinator", "ca", "client"),
                     " && ", leaf("intruder", "other-ca", "client"), ") >openssl.log 2>&1");
    EXPECT_EQ(std::system(script.c_str()), 0) << "openssl failed; see " << d << "/openssl.log";
    return p;
  }();
  return *pki;
}

std::shared_ptr<grpc::ChannelCredentials> ClientCreds(const std::string& ca,
                                                      const std::string& cert = "") {
  const Pki& pki = Certificates();
  TlsClientFlags f;
  f.ca_file = pki.Path(ca + ".crt");
  if (!cert.empty()) {
    f.cert_file = pki.Path(cert + ".crt");
    f.key_file = pki.Path(cert + ".key");
  }
  auto creds = MakeChannelCredentials(f);
  EXPECT_TRUE(creds.ok()) << creds.status();
  return creds.value_or(nullptr);
}

// One mutual-TLS worker process for the whole model, with a health port.
struct Worker {
  std::unique_ptr<Subprocess> proc;
  std::string address, health;
};

// `extra`: more flags (a layer range, peer certificates).
Worker StartWorker(const std::vector<std::string>& extra = {}) {
  const Pki& pki = Certificates();
  Worker w;
  std::vector<std::string> argv = {SHARDLM_WORKER_BIN, "--model", Model(), "--listen",
                                   "127.0.0.1:0", "--threads", "1", "--tls-cert",
                                   pki.Path("server.crt"), "--tls-key", pki.Path("server.key"),
                                   "--tls-ca", pki.Path("ca.crt"), "--health-listen",
                                   "127.0.0.1:0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = Subprocess::Start(argv);
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return w;
  w.proc = std::move(*p);
  w.address = w.proc->WaitForLine("LISTENING ", absl::Seconds(30)).value_or("");
  w.health = w.proc->WaitForLine("HEALTH ", absl::Seconds(30)).value_or("");
  EXPECT_TRUE(w.proc->WaitForLine("READY", absl::Seconds(60)).ok());
  return w;
}

absl::StatusOr<std::unique_ptr<RemoteStage>> ConnectToWorker(
    const Worker& w, std::shared_ptr<grpc::ChannelCredentials> creds) {
  RemoteStageOptions o;
  o.credentials = std::move(creds);
  o.connect_timeout = absl::Seconds(3);
  o.retry_interval = absl::Seconds(1);
  o.on_wait = [](const ConnectWait&) {};
  return RemoteStage::Connect(w.address, o);
}

TEST(TlsCredentialsTest, FlagsAndFilesAreChecked) {
  TlsServerFlags none;
  auto st = MakeServerCredentials(none).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("--insecure"), absl::string_view::npos) << st;
  none.insecure = true;
  EXPECT_TRUE(MakeServerCredentials(none).ok());

  TlsServerFlags missing;
  missing.cert_file = "/nonexistent/server.crt";
  missing.key_file = "/nonexistent/server.key";
  st = MakeServerCredentials(missing).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound) << st;
  EXPECT_NE(st.message().find("--tls-cert"), absl::string_view::npos) << st;
  EXPECT_NE(st.message().find("/nonexistent/server.crt"), absl::string_view::npos) << st;

  TlsServerFlags worker;  // a worker's rule: mutual TLS or nothing
  worker.cert_file = Certificates().Path("server.crt");
  worker.key_file = Certificates().Path("server.key");
  worker.require_client_ca = true;
  worker.client_ca_flag = "--tls-ca";
  st = MakeServerCredentials(worker).status();
  EXPECT_NE(st.message().find("--tls-ca"), absl::string_view::npos) << st;
  worker.client_ca_file = Certificates().Path("openssl.cnf");  // not PEM
  st = MakeServerCredentials(worker).status();
  EXPECT_NE(st.message().find("not PEM"), absl::string_view::npos) << st;

  const std::string tokens = TempDir() + "/tokens";
  WriteFile(tokens, "# comment\n\n  alpha  \nbeta\n");
  auto read = ReadTokenFile(tokens);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, (std::vector<std::string>{"alpha", "beta"}));
  EXPECT_TRUE(MatchesAnyToken("beta", *read));
  EXPECT_FALSE(MatchesAnyToken("bet", *read));
  EXPECT_FALSE(MatchesAnyToken("betaa", *read));
  EXPECT_FALSE(MatchesAnyToken("", *read));
}

TEST(TlsE2eTest, WorkerWithoutTlsFlagsOrInsecureRefusesToStart) {
  auto p = Subprocess::Start({SHARDLM_WORKER_BIN, "--model", Model(), "--listen", "127.0.0.1:0"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Wait(absl::Seconds(30)), 2);
}

TEST(TlsE2eTest, WorkerServesOnlyCoordinatorsWithTheRightClientCertificate) {
  Worker w = StartWorker();
  ASSERT_FALSE(w.address.empty());
  ASSERT_FALSE(w.health.empty());

  // Plaintext probes: the health port says SERVING, the main port (TLS)
  // does not answer plaintext at all.
  auto health = CheckHealth(CreateClientChannel(w.health).get(), "", absl::Seconds(5));
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_TRUE(*health);
  health = CheckHealth(CreateClientChannel(w.health).get(), "shardlm.v1.Stage", absl::Seconds(5));
  EXPECT_TRUE(health.ok() && *health) << health.status();
  EXPECT_FALSE(CheckHealth(CreateClientChannel(w.address).get(), "", absl::Seconds(2)).ok());

  // No client certificate, or one from another CA: refused.
  auto no_cert = ConnectToWorker(w, ClientCreds("ca"));
  EXPECT_FALSE(no_cert.ok());
  auto intruder = ConnectToWorker(w, ClientCreds("ca", "intruder"));
  EXPECT_FALSE(intruder.ok());
  // The coordinator's certificate: served.
  auto stage = ConnectToWorker(w, ClientCreds("ca", "coordinator"));
  ASSERT_TRUE(stage.ok()) << stage.status();
  ForwardRequest request;
  request.seq_ids = {7};
  request.positions = {0};
  request.tokens = {1};
  ForwardResult result;
  ASSERT_TRUE((*stage)->Forward(request, &result).ok());
  EXPECT_EQ(result.logits.size(), static_cast<size_t>((*stage)->info().n_vocab));
  EXPECT_TRUE((*stage)->Release(7).ok());
}

// --topology chain: the worker-to-worker hop uses the same mutual TLS. By
// default a worker presents its own certificate (server.crt carries
// clientAuth) and trusts its --tls-ca; one presenting a certificate of
// another CA (--peer-tls-cert) is refused by the next worker, and the
// failure names that next stage's range.
TEST(TlsE2eTest, ChainHopsUseMutualTls) {
  const Pki& pki = Certificates();
  Worker first = StartWorker({"--layers", "0:2"});
  Worker last = StartWorker({"--layers", "2:5"});
  Worker intruder = StartWorker({"--layers", "0:2", "--peer-tls-cert", pki.Path("intruder.crt"),
                                 "--peer-tls-key", pki.Path("intruder.key")});
  ASSERT_FALSE(first.address.empty() || last.address.empty() || intruder.address.empty());
  auto connect = [&](const Worker& w) -> std::shared_ptr<Stage> {
    auto s = ConnectToWorker(w, ClientCreds("ca", "coordinator"));
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::shared_ptr<Stage>(std::move(*s)) : nullptr;
  };
  std::shared_ptr<Stage> a = connect(first), b = connect(last), c = connect(intruder);
  ASSERT_TRUE(a && b && c);
  auto chained = [](std::vector<std::shared_ptr<Stage>> stages) -> std::unique_ptr<Pipeline> {
    auto p = Pipeline::Create(std::move(stages));
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return nullptr;
    auto chain = Chain::Create(**p);
    EXPECT_TRUE(chain.ok()) << chain.status();
    if (!chain.ok()) return nullptr;
    (*p)->set_step_path(std::move(*chain));
    return std::move(*p);
  };
  ForwardRequest request;
  request.seq_ids = {7};
  request.positions = {0};
  request.tokens = {1};

  auto good = chained({a, b});
  ASSERT_NE(good, nullptr);
  ForwardResult chain_result, relay_result;
  absl::Status st = good->Forward(request, &chain_result);
  ASSERT_TRUE(st.ok()) << st;
  auto relay = Pipeline::Create(std::vector<std::shared_ptr<Stage>>{a, b});
  ASSERT_TRUE(relay.ok());
  request.seq_ids = {8};
  ASSERT_TRUE((*relay)->Forward(request, &relay_result).ok());
  EXPECT_EQ(chain_result.logits, relay_result.logits);

  auto bad = chained({c, b});
  ASSERT_NE(bad, nullptr);
  StageFailure failure;
  request.seq_ids = {9};
  st = bad->Forward(request, &chain_result, {}, &failure);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(failure.range, 1) << st;
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_NE(st.message().find(last.address), std::string::npos) << st;
}

class TlsCoordinatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    worker_ = new Worker(StartWorker());
    const Pki& pki = Certificates();
    CoordinatorOptions o;
    o.model_path = Model();
    o.workers = {worker_->address};
    o.listen = "127.0.0.1:0";
    o.health_listen = "127.0.0.1:0";
    o.worker_wait = absl::Seconds(30);
    TlsServerFlags tls;
    tls.cert_file = pki.Path("server.crt");
    tls.key_file = pki.Path("server.key");
    auto server_creds = MakeServerCredentials(tls);
    ASSERT_TRUE(server_creds.ok()) << server_creds.status();
    o.server_credentials = *server_creds;
    o.worker_credentials = ClientCreds("ca", "coordinator");
    const std::string tokens = TempDir() + "/coordinator-tokens";
    WriteFile(tokens, absl::StrCat("other-token\n", kToken, "\n"));
    auto read = ReadTokenFile(tokens);
    ASSERT_TRUE(read.ok()) << read.status();
    o.auth_tokens = *read;
    auto server = CoordinatorServer::Start(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete worker_;
  }

  static std::unique_ptr<v1::ShardLM::Stub> Stub(std::shared_ptr<grpc::ChannelCredentials> creds) {
    return v1::ShardLM::NewStub(CreateClientChannel(server_->address(), std::move(creds), ""));
  }
  static grpc::Status ModelInfo(v1::ShardLM::Stub* stub, const std::string& authorization) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(5)));
    if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
    v1::ModelInfo info;
    return stub->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &info);
  }
  // Greedy tokens of a short Generate and the call's status.
  static grpc::Status Generate(v1::ShardLM::Stub* stub, const std::string& token,
                               std::vector<int32_t>* out) {
    v1::GenerateRequest req;
    req.set_prompt("Once upon a time");
    req.mutable_sampling()->set_temperature(0);
    req.mutable_sampling()->set_max_tokens(8);
    req.mutable_sampling()->set_ignore_eos(true);
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(60)));
    AddBearerToken(&ctx, token);
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateResponse r;
    while (reader->Read(&r)) {
      if (r.has_chunk() && r.chunk().token_id() >= 0) out->push_back(r.chunk().token_id());
    }
    return reader->Finish();
  }

  static Worker* worker_;
  static CoordinatorServer* server_;
};

Worker* TlsCoordinatorTest::worker_ = nullptr;
CoordinatorServer* TlsCoordinatorTest::server_ = nullptr;

TEST_F(TlsCoordinatorTest, PlaintextAndWrongCaClientsAreRefused) {
  auto plain = Stub(grpc::InsecureChannelCredentials());
  EXPECT_EQ(ModelInfo(plain.get(), absl::StrCat("Bearer ", kToken)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  auto wrong_ca = Stub(ClientCreds("other-ca"));
  EXPECT_EQ(ModelInfo(wrong_ca.get(), absl::StrCat("Bearer ", kToken)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsCoordinatorTest, BearerTokenIsRequiredOnEveryRpc) {
  auto stub = Stub(ClientCreds("ca"));
  grpc::Status st = ModelInfo(stub.get(), "");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(st.error_message().find("missing"), std::string::npos) << st.error_message();
  st = ModelInfo(stub.get(), "Basic dXNlcjpwYXNz");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  st = ModelInfo(stub.get(), "Bearer not-the-token-42");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(st.error_message().find("not-the-token-42"), std::string::npos) << "echoed the token";
  EXPECT_TRUE(ModelInfo(stub.get(), absl::StrCat("Bearer ", kToken)).ok());
  EXPECT_TRUE(ModelInfo(stub.get(), "Bearer other-token").ok());

  {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(5)));
    v1::TokenizeRequest req;
    req.set_text("Hello");
    v1::TokenizeResponse res;
    EXPECT_EQ(stub->Tokenize(&ctx, req, &res).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(5)));
    ctx.AddMetadata("authorization", "Bearer wrong");
    v1::DetokenizeRequest req;
    v1::DetokenizeResponse res;
    EXPECT_EQ(stub->Detokenize(&ctx, req, &res).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(5)));
    v1::ChatRequest req;
    auto reader = stub->Chat(&ctx, req);
    v1::GenerateResponse r;
    while (reader->Read(&r)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  std::vector<int32_t> tokens;
  EXPECT_EQ(Generate(stub.get(), "wrong", &tokens).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(tokens.empty());
}

TEST_F(TlsCoordinatorTest, RightTokenOverTlsIsServed) {
  auto stub = Stub(ClientCreds("ca"));
  std::vector<int32_t> tokens;
  grpc::Status st = Generate(stub.get(), kToken, &tokens);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(tokens.size(), 8u);
  // Greedy is deterministic: a second stream gives the same tokens.
  std::vector<int32_t> again;
  ASSERT_TRUE(Generate(stub.get(), kToken, &again).ok());
  EXPECT_EQ(tokens, again);
}

TEST_F(TlsCoordinatorTest, PlaintextHealthPortMirrorsServing) {
  ASSERT_FALSE(server_->health_address().empty());
  auto channel = CreateClientChannel(server_->health_address());
  auto serving = CheckHealth(channel.get(), "", absl::Seconds(5));
  ASSERT_TRUE(serving.ok()) << serving.status();
  EXPECT_TRUE(*serving);
  serving = CheckHealth(channel.get(), "shardlm.v1.ShardLM", absl::Seconds(5));
  EXPECT_TRUE(serving.ok() && *serving) << serving.status();
  // The main port speaks TLS only.
  EXPECT_FALSE(
      CheckHealth(CreateClientChannel(server_->address()).get(), "", absl::Seconds(2)).ok());
}

TEST_F(TlsCoordinatorTest, CoordinatorWithoutClientCertificateCannotUseTheWorker) {
  CoordinatorOptions o;
  o.model_path = Model();
  o.workers = {worker_->address};
  o.listen = "127.0.0.1:0";
  o.worker_wait = absl::Seconds(3);
  o.worker_credentials = ClientCreds("ca");  // trusts the worker, but has no certificate
  o.on_status = [](const std::string&) {};
  auto server = CoordinatorServer::Start(o);
  EXPECT_FALSE(server.ok());
}

}  // namespace
}  // namespace shardlm::testing
