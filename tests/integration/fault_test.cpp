// Faults between the service and its peers: the service on radosgw +
// PostgreSQL, each reached through a FaultProxy (tests/support). For every
// fault on either peer, the same work runs while the fault holds (single-shot
// PUTs and a form POST, a tus upload in two PATCHes, downloads whole and by
// range, a delete, the janitor on its one-second round), then the fault ends
// and the test checks what the service promises:
//   - every request is answered (no hang): 2xx, or 503 while a peer is down;
//     slow but working peers (latency, bandwidth) get every request done;
//   - the service serves uploads again within 5 s of the peer's return;
//   - a tus upload that was created resumes to its end;
//   - every upload that got a 2xx is byte-identical on download, every other
//     left nothing: no object, no multipart upload, no tail object, no row;
//   - no `pending` row after the janitor, quota usage = the sum of complete
//     files, and peak memory within the buffer budget + 64 MiB.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <functional>
#include <set>

#include "../support/fault_proxy.hpp"
#include "../support/test_database.hpp"
#include "harness.hpp"
#include "s3_peer.hpp"
#include "util/crypto.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;
using Headers = std::map<std::string, std::string>;
using s3up::testing::FaultProxy;
constexpr std::uint64_t MiB = 1024 * 1024;
constexpr std::uint64_t kBufferBudget = 32 * MiB;

// The longest the service may take to answer while a peer misbehaves: its
// peer timeouts (2 s here) times its attempts, and a margin for the machine.
constexpr auto kAnswerWithin = 45s;

// host and port of "scheme://[user@]host:port[/...]".
std::pair<std::string, unsigned short> host_port(const std::string& url) {
  std::string rest = url.substr(url.find("://") + 3);
  rest = rest.substr(0, rest.find('/'));
  if (const auto at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
  const auto colon = rest.rfind(':');
  return {rest.substr(0, colon), static_cast<unsigned short>(std::stoi(rest.substr(colon + 1)))};
}

std::string replace_port(std::string url, unsigned short from, unsigned short to) {
  const std::string old = ":" + std::to_string(from);
  const auto at = url.find(old);
  return url.replace(at, old.size(), ":" + std::to_string(to));
}

// Rows of one query on the test's database, as text.
std::vector<std::vector<std::string>> pg_rows(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  std::vector<std::vector<std::string>> out;
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
      for (int i = 0; i < PQntuples(r); ++i) {
        auto& row = out.emplace_back();
        for (int j = 0; j < PQnfields(r); ++j) row.emplace_back(PQgetvalue(r, i, j));
      }
    }
    PQclear(r);
  }
  const std::string error = PQstatus(c) == CONNECTION_OK ? "" : PQerrorMessage(c);
  PQfinish(c);
  if (!error.empty()) throw std::runtime_error(error);
  return out;
}

// One request, answered within `within` or not at all.
std::optional<Response> ask(unsigned short port, const std::string& method, const std::string& target,
                            const Headers& headers, const std::string& body, std::chrono::milliseconds within) {
  Connection c(port);
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n";
  c.send(req);
  c.send(body);
  return c.read_response(within, method == "HEAD");
}

enum class Peer { store, database };

struct FaultCase {
  std::string name;
  Peer peer;
  std::function<void(FaultProxy&)> inject;
  bool peer_works = false;  // slow, not broken: every request must succeed
  std::map<std::string, std::string> env = {};  // the service's settings for this case
};

std::string case_name(const ::testing::TestParamInfo<FaultCase>& info) { return info.param.name; }
void PrintTo(const FaultCase& c, std::ostream* out) { *out << (c.peer == Peer::store ? "store " : "database ") << c.name; }

// One upload the test tried, and what its client was told.
struct Tried {
  std::string name;
  std::uint64_t size = 0, seed = 0;
  int status = 0;  // 0: no answer
  std::string id;  // from a 2xx answer
};

class Faults : public ::testing::TestWithParam<FaultCase> {
 protected:
  void SetUp() override {
    const auto [s3_host, s3_port] = host_port(testing::required_env("S3UP_TEST_S3_ENDPOINT"));
    const auto [pg_host, pg_port] = host_port(testing::required_env("S3UP_TEST_PG_URL"));
    store_proxy_ = std::make_unique<FaultProxy>(std::vector<std::pair<std::string, unsigned short>>{{s3_host, s3_port}});
    database_proxy_ =
        std::make_unique<FaultProxy>(std::vector<std::pair<std::string, unsigned short>>{{pg_host, pg_port}});
    auto env = peer_.server_env();
    env["S3UP_S3_ENDPOINT"] = "http://127.0.0.1:" + std::to_string(store_proxy_->port());
    env["S3UP_DATABASE"] = replace_port(database_.url(), pg_port, database_proxy_->port());
    env["S3UP_BUFFER_BUDGET"] = std::to_string(kBufferBudget);
    env["S3UP_DOWNLOAD_BUDGET"] = "8MiB";
    env["S3UP_S3_TIMEOUT"] = "2s";
    env["S3UP_DATABASE_TIMEOUT"] = "2s";
    env["S3UP_JANITOR_INTERVAL"] = "1s";
    env["S3UP_STALE_UPLOAD_AGE"] = "2s";
    for (const auto& [k, v] : GetParam().env) env[k] = v;
    server_ = std::make_unique<ServerProcess>(env);
    token_ = server_->create_user_with_token("alice");
  }

  FaultProxy& proxy() { return GetParam().peer == Peer::store ? *store_proxy_ : *database_proxy_; }
  Headers auth(Headers extra = {}) const {
    extra.emplace("Authorization", "Bearer " + token_);
    return extra;
  }
  Headers tus(Headers extra = {}) const {
    extra.emplace("Tus-Resumable", "1.0.0");
    return auth(std::move(extra));
  }

  // An answer within kAnswerWithin, or a failure; the outcome recorded.
  std::optional<Response> answered(const std::string& what, const std::string& method, const std::string& target,
                                   const Headers& headers, const std::string& body = "") {
    auto r = ask(server_->port(), method, target, headers, body, kAnswerWithin);
    if (!r) {
      ADD_FAILURE() << what << ": no answer within " << kAnswerWithin.count() << " s";
      return r;
    }
    const bool ok = r->status / 100 == 2;
    if (GetParam().peer_works) {
      EXPECT_TRUE(ok) << what << ": " << r->status << " " << r->body;
    } else {
      EXPECT_TRUE(ok || r->status == 503) << what << ": " << r->status << " " << r->body;
    }
    return r;
  }

  void put(Tried& t) {
    const auto r = answered("PUT " + t.name, "PUT", "/upload/" + t.name, auth(), ContentStream::make(t.size, t.seed));
    if (!r) return;
    t.status = r->status;
    if (r->status == 201) t.id = r->json().at("file_id").as_string().c_str();
  }
  void post_form(Tried& t) {
    const auto r = answered("POST " + t.name, "POST", "/upload", auth({{"Content-Type", Multipart::content_type()}}),
                            Multipart::body(t.name, ContentStream::make(t.size, t.seed)));
    if (!r) return;
    t.status = r->status;
    if (r->status == 201) t.id = r->json().at("file_id").as_string().c_str();
  }

  // "<status> <SHA-256 of the body>"; "cut" when the connection closed
  // before the whole answer (a body the store stopped sending): the client
  // can tell, and nothing hangs.
  std::string download(const std::string& id, const Headers& extra = {}) {
    const auto started = std::chrono::steady_clock::now();
    const auto r = ask(server_->port(), "GET", "/files/" + id + "/content", auth(extra), "", kAnswerWithin);
    if (!r) return std::chrono::steady_clock::now() - started < kAnswerWithin ? "cut" : "(no answer)";
    return std::to_string(r->status) + " " + util::sha256_hex(r->body);
  }

  // What the database and the bucket hold, once the janitor has had its say.
  std::string leftovers() {
    std::string out;
    const auto url = database_.url();
    for (const auto& row : pg_rows(url, "SELECT id, status FROM uploads WHERE status NOT IN ('complete', 'failed')")) {
      out += "row " + row[0] + " " + row[1] + "; ";
    }
    std::set<std::string> complete_keys;
    for (const auto& row : pg_rows(url, "SELECT storage_key FROM uploads WHERE status = 'complete'")) {
      complete_keys.insert("objects/" + row[0]);
    }
    for (const auto& key : peer_.keys()) {
      if (!complete_keys.contains(key)) out += "object " + key + "; ";
    }
    for (const auto& u : peer_.multipart_uploads()) out += "multipart upload " + u.key + "; ";
    const auto usage = pg_rows(url,
                               "SELECT u.used_bytes, (SELECT COALESCE(SUM(file_size), 0) FROM uploads "
                               "WHERE user_id = u.id AND status = 'complete') FROM users u");
    for (const auto& row : usage) {
      if (row[0] != row[1]) out += "usage " + row[0] + " != sum " + row[1] + "; ";
    }
    return out;
  }

  S3Peer peer_;
  testing::TestDatabase database_;
  std::unique_ptr<FaultProxy> store_proxy_, database_proxy_;
  std::unique_ptr<ServerProcess> server_;
  std::string token_;
};

TEST_P(Faults, NothingAcknowledgedIsLostNothingElseIsLeft) {
  // Before the fault: two files to download and delete under it.
  std::vector<Tried> tried = {{"before-small.bin", 64 * 1024, 1}, {"before-large.bin", 6 * MiB, 2}};
  for (auto& t : tried) put(t);
  ASSERT_EQ(tried[0].status, 201);
  ASSERT_EQ(tried[1].status, 201);
  const std::string large_sha = ContentStream::sha256_of(6 * MiB, 2);
  const std::string range_sha = util::sha256_hex(ContentStream::make(6 * MiB, 2).substr(1000, 100'000));

  GetParam().inject(proxy());
  tried.push_back({"during-small.bin", 256 * 1024, 3});
  put(tried.back());
  tried.push_back({"during-large.bin", 6 * MiB, 4});
  put(tried.back());
  tried.push_back({"during-form.bin", MiB, 5});
  post_form(tried.back());

  // A tus upload of 6 MiB in two PATCHes.
  const std::uint64_t tus_size = 6 * MiB;
  const std::string tus_content = ContentStream::make(tus_size, 6);
  std::string tus_path;
  if (auto r = answered("tus creation", "POST", "/upload/resumable",
                        tus({{"Upload-Length", std::to_string(tus_size)},
                             {"Upload-Metadata", "filename " + util::base64("during-tus.bin")}}))) {
    if (r->status == 201) tus_path = r->header("location").substr(r->header("location").find("/upload/resumable/"));
  }
  for (std::uint64_t offset = 0; !tus_path.empty() && offset < tus_size; offset += tus_size / 2) {
    const auto r =
        answered("tus PATCH at " + std::to_string(offset), "PATCH", tus_path,
                 tus({{"Content-Type", "application/offset+octet-stream"}, {"Upload-Offset", std::to_string(offset)}}),
                 tus_content.substr(offset, tus_size / 2));
    if (!r || r->status != 204) break;  // resumed below, from the offset the service reports
  }

  // Downloads: whatever answers 200/206 must be the right bytes.
  for (const auto& [range, sha, code] :
       {std::tuple{std::string(), large_sha, 200}, std::tuple{std::string("bytes=1000-100999"), range_sha, 206}}) {
    const auto got = download(tried[1].id, range.empty() ? Headers{} : Headers{{"Range", range}});
    if (GetParam().peer_works || got.starts_with(std::to_string(code))) {
      EXPECT_EQ(got, std::to_string(code) + " " + sha) << "download " << range;
    } else {
      EXPECT_TRUE(got.starts_with("503") || got == "cut") << "download " << range << ": " << got;
    }
  }
  const auto deleted = answered("DELETE", "DELETE", "/files/" + tried[0].id, auth());
  // 202: recorded, finished by the janitor; either way gone for clients.
  const bool delete_acknowledged = deleted && (deleted->status == 204 || deleted->status == 202);

  // The peer returns: uploads work again within 5 s.
  std::this_thread::sleep_for(1s);  // the janitor's rounds meet the fault too
  proxy().clear();
  const auto back = std::chrono::steady_clock::now();
  int probe = 0;
  bool served = false;
  while (!served && std::chrono::steady_clock::now() - back < 5s) {
    const auto r = ask(server_->port(), "PUT", "/upload/probe" + std::to_string(probe++), auth(), "x", 5s);
    served = r && r->status == 201;
    if (!served) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(served) << "not serving uploads 5 s after the peer's return\n" << server_->log();

  // The tus upload resumes from wherever it got to.
  if (!tus_path.empty()) {
    const auto head = ask(server_->port(), "HEAD", tus_path, tus(), "", 20s);
    ASSERT_TRUE(head && head->status == 200) << (head ? head->body : "no answer") << server_->log();
    const std::uint64_t offset = std::stoull(head->header("upload-offset"));
    if (offset < tus_size) {
      const auto rest = ask(server_->port(), "PATCH", tus_path,
                            tus({{"Content-Type", "application/offset+octet-stream"},
                                 {"Upload-Offset", std::to_string(offset)}}),
                            tus_content.substr(offset), 30s);
      ASSERT_TRUE(rest) << "no answer to the resuming PATCH";
      EXPECT_EQ(rest->status, 204) << rest->body;
    }
    tried.push_back({"during-tus.bin", tus_size, 6, 201, tus_path.substr(tus_path.rfind('/') + 1)});
  }

  // Every acknowledged upload reads back whole; the others left nothing.
  for (const auto& t : tried) {
    if (t.status / 100 == 2) {
      if (&t == &tried[0] && delete_acknowledged) {
        EXPECT_EQ(request(server_->port(), "GET", "/files/" + t.id, auth()).status, 404) << "a deleted file is back";
        continue;
      }
      EXPECT_EQ(download(t.id), "200 " + ContentStream::sha256_of(t.size, t.seed)) << t.name;
    } else {
      const auto rows = pg_rows(database_.url(), "SELECT status FROM uploads WHERE file_name = '" + t.name + "'");
      for (const auto& row : rows) EXPECT_NE(row[0], "complete") << t.name << " was refused yet is complete";
    }
  }
  std::string left;
  const bool settled = eventually(
      [&] {
        left = leftovers();
        return left.empty();
      },
      20s);
  EXPECT_TRUE(settled) << left << "\n" << server_->log();
  if (kMemoryIsMeasurable) EXPECT_LE(server_->peak_rss_bytes(), kBufferBudget + 64 * MiB);
  const auto c = proxy().counts();
  std::cerr << GetParam().name << ": " << c.connections << " connections, " << c.resets << " resets, "
            << c.answers_lost << " answers lost, " << c.dropped << " dropped; statuses:";
  for (const auto& t : tried) std::cerr << " " << t.name << "=" << t.status;
  std::cerr << "\n";
}

INSTANTIATE_TEST_SUITE_P(
    Store, Faults,
    ::testing::Values(FaultCase{"latency", Peer::store, [](FaultProxy& f) { f.latency(100ms); }, true},
                      // The socket buffers hold seconds of bytes at this rate: a request's
                      // last bytes leave them long after the service wrote them.
                      FaultCase{"bandwidth", Peer::store, [](FaultProxy& f) { f.bandwidth(MiB); }, true,
                                {{"S3UP_S3_TIMEOUT", "15s"}}},
                      FaultCase{"reset", Peer::store, [](FaultProxy& f) { f.reset_after(3 * MiB); }},
                      FaultCase{"blackhole", Peer::store, [](FaultProxy& f) { f.blackhole(true); }},
                      FaultCase{"half_open", Peer::store, [](FaultProxy& f) { f.half_open(true); }},
                      FaultCase{"lost_answers", Peer::store, [](FaultProxy& f) { f.lose_answers(4); }},
                      FaultCase{"refuse", Peer::store, [](FaultProxy& f) { f.refuse(true); }}),
    case_name);

INSTANTIATE_TEST_SUITE_P(
    Database, Faults,
    ::testing::Values(FaultCase{"latency", Peer::database, [](FaultProxy& f) { f.latency(20ms); }, true},
                      FaultCase{"bandwidth", Peer::database, [](FaultProxy& f) { f.bandwidth(256 * 1024); }, true},
                      FaultCase{"reset", Peer::database, [](FaultProxy& f) { f.reset_after(20'000); }},
                      FaultCase{"blackhole", Peer::database, [](FaultProxy& f) { f.blackhole(true); }},
                      FaultCase{"half_open", Peer::database, [](FaultProxy& f) { f.half_open(true); }},
                      FaultCase{"lost_answers", Peer::database, [](FaultProxy& f) { f.lose_answers(3); }},
                      FaultCase{"refuse", Peer::database, [](FaultProxy& f) { f.refuse(true); }}),
    case_name);

}  // namespace
}  // namespace s3up::test
