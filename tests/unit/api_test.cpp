// In-process tests of the request path and the upload session: the router
// (404, 405 with Allow, HEAD through GET, OPTIONS), the API's handlers behind
// their middleware, the error table's headers, and every stage and failure
// path of an upload session. No socket: requests are built here and handlers
// called directly, over in-memory stores (tests/support/memory_stores.hpp).
#include <gtest/gtest.h>

#include <set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include "../support/memory_stores.hpp"
#include "api/api.hpp"
#include "http/router.hpp"
#include "upload/engine.hpp"
#include "util/crypto.hpp"

namespace s3up {
namespace {

namespace asio = boost::asio;
namespace beast_http = boost::beast::http;
using beast_http::verb;

// Runs a coroutine to completion on a fresh io_context.
template <class T>
T run(asio::awaitable<T> op) {
  asio::io_context io;
  auto future = asio::co_spawn(io, std::move(op), asio::use_future);
  io.run();
  return future.get();
}

// A request body from a string, handed out in pieces of `piece` bytes.
class StringBody final : public http::BodyReader {
 public:
  explicit StringBody(std::string bytes, std::size_t piece = 7000) : bytes_(std::move(bytes)), piece_(piece) {}
  asio::awaitable<std::span<const char>> read_some() override {
    const auto n = std::min(piece_, bytes_.size() - at_);
    std::span<const char> out(bytes_.data() + at_, n);
    at_ += n;
    co_return out;
  }
  std::optional<std::uint64_t> content_length() const override { return bytes_.size(); }

 private:
  std::string bytes_;
  std::size_t piece_;
  std::size_t at_ = 0;
};

// One request through `handler`, as the server would pass it.
struct Call {
  http::RequestHeader header;
  StringBody body;
  http::RequestContext context;

  Call(verb method, std::string target, std::string body_bytes = "") : body(std::move(body_bytes)) {
    header.method(method);
    header.target(target);
    header.version(11);
    header.set(beast_http::field::host, "test");
  }
  Call& with(std::string_view name, std::string_view value) {
    header.set(name, value);
    return *this;
  }
  http::Response through(const http::Handler& handler) {
    http::Request request{header, body, context};
    return run(handler(request));
  }
};

std::string body_of(const http::Response& res) {
  const auto* text = std::get_if<std::string>(&res.body());
  return text ? *text : std::string();
}

// --- the router -----------------------------------------------------------

http::Handler answer(unsigned status, std::string text) {
  return [status, text](http::Request& r) -> asio::awaitable<http::Response> {
    http::Response res(static_cast<http::Status>(status));
    std::string body = text;
    for (const auto& [k, v] : r.params) body += " " + std::string(k) + "=" + std::string(v);
    res.body(body);
    co_return res;
  };
}

http::Handler routed(const http::Router& router) {
  return http::chain({http::error_answers()}, [&router](http::Request& r) { return router(r); });
}

TEST(Router, RoutesByMethodAndPatternWithParameters) {
  http::Router router;
  router.add(verb::get, "/files", answer(200, "list"));
  router.add(verb::get, "/files/{id}", answer(200, "one"));
  router.add(verb::delete_, "/files/{id}", answer(204, "gone"));
  router.add(verb::get, "/files/{id}/content", answer(200, "bytes"));
  router.add(verb::put, "/upload/{name*}", answer(201, "put"));
  const auto handler = routed(router);

  EXPECT_EQ(body_of(Call(verb::get, "/files?limit=3").through(handler)), "list");
  EXPECT_EQ(body_of(Call(verb::get, "/files/abc").through(handler)), "one id=abc");
  EXPECT_EQ(body_of(Call(verb::get, "/files/abc/content").through(handler)), "bytes id=abc");
  EXPECT_EQ(body_of(Call(verb::put, "/upload/a/b%20c.txt").through(handler)), "put name=a/b%20c.txt");
  EXPECT_EQ(body_of(Call(verb::put, "/upload/").through(handler)), "put name=");  // the handler decides
  auto c = Call(verb::get, "/files/abc");
  c.through(handler);
  EXPECT_EQ(c.context.route, "/files/{id}");
  auto rest = Call(verb::put, "/upload/x");
  rest.through(handler);
  EXPECT_EQ(rest.context.route, "/upload/{name}");
}

TEST(Router, UnknownPathsAre404AndOtherMethods405WithAllow) {
  http::Router router;
  router.add(verb::post, "/upload", answer(201, "form"));
  router.add(verb::get, "/files/{id}", answer(200, "one"));
  router.add(verb::delete_, "/files/{id}", answer(204, ""));
  const auto handler = routed(router);

  for (const auto* path : {"/nope", "/files", "/files/a/b", "/upload/x", "/"}) {
    const auto res = Call(verb::get, path).through(handler);
    EXPECT_EQ(res.status(), 404u) << path;
    EXPECT_NE(body_of(res).find("\"not_found\""), std::string::npos) << path;
  }
  auto res = Call(verb::get, "/upload").through(handler);
  EXPECT_EQ(res.status(), 405u);
  EXPECT_EQ(res[beast_http::field::allow], "POST");
  EXPECT_NE(body_of(res).find("\"method_not_allowed\""), std::string::npos);
  res = Call(verb::put, "/files/1").through(handler);
  EXPECT_EQ(res.status(), 405u);
  EXPECT_EQ(res[beast_http::field::allow], "GET, HEAD, DELETE");
}

TEST(Router, OptionsAnswersAllowAndHeadRunsTheGetHandler) {
  http::Router router;
  router.add(verb::get, "/files/{id}", answer(200, "one"));
  router.add(verb::delete_, "/files/{id}", answer(204, ""));
  router.add(verb::post, "/upload", answer(201, "form"));
  const auto handler = routed(router);

  auto res = Call(verb::options, "/files/1").through(handler);
  EXPECT_EQ(res.status(), 204u);
  EXPECT_EQ(res[beast_http::field::allow], "GET, HEAD, DELETE");
  EXPECT_EQ(Call(verb::options, "/upload").through(handler)[beast_http::field::allow], "POST");
  EXPECT_EQ(Call(verb::options, "/nope").through(handler).status(), 404u);

  // HEAD: the GET's answer, with the GET's length (the server sends no body).
  const auto get = Call(verb::get, "/files/1").through(handler);
  const auto head = Call(verb::head, "/files/1").through(handler);
  EXPECT_EQ(head.status(), get.status());
  EXPECT_EQ(head.body_length(), get.body_length());
  EXPECT_EQ(Call(verb::head, "/upload").through(handler).status(), 405u);  // no GET there
}

TEST(Middleware, RequestIdsAreTakenWhenSaneAndEchoed) {
  http::Router router;
  router.add(verb::get, "/x", answer(200, "x"));
  const auto handler =
      http::chain({http::request_id(), http::error_answers()}, [&](http::Request& r) { return router(r); });
  auto given = Call(verb::get, "/x").with("X-Request-Id", "abc-123");
  EXPECT_EQ(given.through(handler)["X-Request-Id"], "abc-123");
  auto made = Call(verb::get, "/x").with("X-Request-Id", "has space");
  const auto res = made.through(handler);
  EXPECT_EQ(res["X-Request-Id"].size(), 16u);
  EXPECT_EQ(res["X-Request-Id"], made.context.request_id);
  // Errors carry it too.
  EXPECT_EQ(Call(verb::get, "/nope").with("X-Request-Id", "e1").through(handler)["X-Request-Id"], "e1");
}

TEST(ErrorTable, AnswersCarryTheirHeaders) {
  const auto unauthorized = http::error_response(ApiError(errc::unauthorized, "no"));
  EXPECT_EQ(unauthorized.status(), 401u);
  EXPECT_EQ(unauthorized[beast_http::field::www_authenticate], "Bearer realm=\"s3uploader\"");
  const auto limited = http::error_response(ApiError(errc::too_many_requests, "slow down", 7));
  EXPECT_EQ(limited.status(), 429u);
  EXPECT_EQ(limited[beast_http::field::retry_after], "7");
  const auto range =
      http::error_response(ApiError(errc::range_not_satisfiable, "no", {{"Content-Range", "bytes */10"}}));
  EXPECT_EQ(range.status(), 416u);
  EXPECT_EQ(range[beast_http::field::content_range], "bytes */10");
  EXPECT_EQ(body_of(range), "{\"error\":{\"code\":\"range_not_satisfiable\",\"message\":\"no\"}}\n");
  // What the server itself throws matches the table's codes and statuses.
  for (const auto code : {errc::timeout, errc::client_disconnected, errc::shutting_down, errc::bad_request,
                          errc::file_too_large, errc::uri_too_long, errc::headers_too_large, errc::not_implemented}) {
    const ApiError e(code, "x");
    EXPECT_EQ(e.status(), static_cast<unsigned>(error_status(code)));
    EXPECT_EQ(e.code_name(), error_slug(code));
  }
  EXPECT_EQ(error_status(errc::client_disconnected), http::kClientClosedRequest);
}

TEST(ErrorTable, StorageFailuresAsTheApiAnswersThem) {
  using storage::Failure;
  const auto code = [](Failure f) { return api::api_error(storage::Error(f, "x")).code(); };
  EXPECT_EQ(code(Failure::not_found), errc::not_found);
  EXPECT_EQ(code(Failure::unavailable), errc::storage_unavailable);
  EXPECT_EQ(code(Failure::rejected), errc::storage_error);
  EXPECT_EQ(code(Failure::full), errc::insufficient_storage);
  EXPECT_EQ(code(Failure::too_large), errc::file_too_large);
  EXPECT_EQ(code(Failure::refused), errc::internal);
  EXPECT_EQ(code(Failure::internal), errc::internal);
}

// --- the API over in-memory stores ---------------------------------------

class InProcessApi : public ::testing::Test {
 protected:
  void SetUp() override {
    alice_ = metadata_.create_user("alice", false);
    token_ = auth::issue_token(metadata_, alice_, "test", std::nullopt).secret;
  }
  api::Api& api(auth::RateLimit limit = {}) {
    if (!api_) {
      api_ = std::make_unique<api::Api>(api::Dependencies{
          .uploads = services_, .authenticator = authenticator_, .rate_limit = limit, .readiness = &readiness_});
      handler_ = http::chain({http::request_id(), http::error_answers()},
                             [this](http::Request& r) { return api_->handle(r); });
    }
    return *api_;
  }
  http::Response call(Call&& c) {
    api();
    return c.through(handler_);
  }
  http::Response call_as_alice(verb method, const std::string& target, std::string body = "") {
    return call(std::move(Call(method, target, std::move(body)).with("Authorization", "Bearer " + token_)));
  }
  std::string upload(const std::string& name, const std::string& bytes) {
    const auto res = call_as_alice(verb::put, "/upload/" + name, bytes);
    EXPECT_EQ(res.status(), 201u) << body_of(res);
    const auto text = body_of(res);
    const auto at = text.find("\"file_id\":\"") + 11;
    return text.substr(at, text.find('"', at) - at);
  }
  // A streamed body, read whole as the server would send it.
  static std::string streamed(const http::Response& res) {
    const auto* stream = std::get_if<http::Response::Stream>(&res.body());
    if (!stream) return body_of(res);
    return run([](std::shared_ptr<http::BodySource> source) -> asio::awaitable<std::string> {
      co_await source->open();
      std::string out;
      for (;;) {
        const auto piece = co_await source->next();
        if (piece.empty()) break;
        out.append(piece.data(), piece.size());
      }
      co_return out;
    }(stream->source));
  }

  asio::thread_pool pool_{2};
  testing::MemoryObjectStore store_;
  testing::MemoryMetadata metadata_;
  auth::Authenticator authenticator_{metadata_, pool_};
  upload::Services services_{store_, metadata_, metadata_, pool_, upload::Limits{}};
  api::Readiness readiness_{metadata_, store_, pool_};
  db::User alice_;
  std::string token_;
  std::unique_ptr<api::Api> api_;
  http::Handler handler_;
};

TEST_F(InProcessApi, UploadListDownloadDelete) {
  const std::string bytes(50'000, 'q');
  const auto id = upload("notes.txt", bytes);
  EXPECT_EQ(store_.object("u/" + std::to_string(alice_.id) + "/" + id), bytes);
  const auto list = call_as_alice(verb::get, "/files");
  EXPECT_NE(body_of(list).find(id), std::string::npos);
  const auto content = call_as_alice(verb::get, "/files/" + id + "/content");
  EXPECT_EQ(content.status(), 200u);
  EXPECT_EQ(content.body_length(), bytes.size());
  EXPECT_EQ(streamed(content), bytes);
  EXPECT_EQ(call_as_alice(verb::delete_, "/files/" + id).status(), 204u);
  EXPECT_EQ(call_as_alice(verb::get, "/files/" + id).status(), 404u);
  EXPECT_EQ(store_.object_count(), 0u);
}

TEST_F(InProcessApi, HeadOnEveryGetRouteIsTheGetWithoutItsBody) {
  const auto id = upload("a.bin", std::string(3000, 'a'));
  int checked = 0;
  for (const auto& route : api().router().routes()) {
    if (route.method != verb::get) continue;
    std::string target = route.pattern;
    if (const auto at = target.find("{id}"); at != std::string::npos) target.replace(at, 4, id);
    const auto get = call_as_alice(verb::get, target);
    const auto head = call_as_alice(verb::head, target);
    EXPECT_EQ(head.status(), get.status()) << target;
    EXPECT_EQ(head.body_length(), get.body_length()) << target;
    for (const auto& field : get.header()) {
      if (field.name_string() == "X-Request-Id") continue;
      EXPECT_EQ(head[field.name_string()], field.value()) << target << " " << field.name_string();
    }
    ++checked;
  }
  // /healthz, /readyz, /metrics (403: not from loopback), /, /assets/{name}, /files, /files/{id}, /files/{id}/content, /api/config, /upload-links, the
  // admin API's /admin/users, /admin/users/{name}, /admin/users/{name}/tokens and /admin/webhooks (403 for
  // alice), and an upload link's /u/{token} and /u/{token}/info (no such link: 404, the page's and the API's)
  EXPECT_EQ(checked, 16);
}

TEST_F(InProcessApi, ErrorsFromTheTableWithTheirHeaders) {
  auto res = call(Call(verb::get, "/files"));
  EXPECT_EQ(res.status(), 401u);
  EXPECT_EQ(res[beast_http::field::www_authenticate], "Bearer realm=\"s3uploader\"");
  res = call_as_alice(verb::post, "/files");
  EXPECT_EQ(res.status(), 405u);
  EXPECT_EQ(res[beast_http::field::allow], "GET, HEAD");
  const auto id = upload("r.bin", "0123456789");
  res = call(std::move(Call(verb::get, "/files/" + id + "/content")
                           .with("Authorization", "Bearer " + token_)
                           .with("Range", "bytes=50-")));
  EXPECT_EQ(res.status(), 416u);
  EXPECT_EQ(res[beast_http::field::content_range], "bytes */10");
  EXPECT_FALSE(res[beast_http::field::etag].empty());
  // A missing object behind a complete record: the stream's open() fails, before any header.
  store_.fail.remove = false;
  const std::string object_key = "u/" + std::to_string(alice_.id) + "/" + id;
  run(store_.remove(object_key));
  res = call_as_alice(verb::get, "/files/" + id + "/content");
  const auto* stream = std::get_if<http::Response::Stream>(&res.body());
  ASSERT_NE(stream, nullptr);
  try {
    run(stream->source->open());
    FAIL() << "a missing object opened";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.code(), errc::internal);
  }
}

TEST_F(InProcessApi, RateLimitIsMiddlewareWithRetryAfter) {
  api(auth::RateLimit{1, 2});
  EXPECT_EQ(call_as_alice(verb::get, "/files").status(), 200u);
  EXPECT_EQ(call_as_alice(verb::get, "/files").status(), 200u);
  const auto res = call_as_alice(verb::get, "/files");
  EXPECT_EQ(res.status(), 429u);
  EXPECT_EQ(res[beast_http::field::retry_after], "1");
  EXPECT_EQ(call(Call(verb::get, "/healthz")).status(), 200u);  // no token, no limit
}

TEST_F(InProcessApi, StorageFailuresBecomeApiErrors) {
  store_.fail.open = true;
  const auto res = call_as_alice(verb::put, "/upload/x.bin", "abc");
  EXPECT_EQ(res.status(), 503u);
  EXPECT_NE(body_of(res).find("\"storage_unavailable\""), std::string::npos);
  EXPECT_EQ(metadata_.count_uploads(db::UploadStatus::failed), 1);
}

// --- the upload engine, single-shot -----------------------------------------

// A source of the pieces given, then its end. `before` (may be empty) runs
// before piece i is handed out: to look at the upload mid-way, or to start
// another one meanwhile. `fail_at` makes the read of piece i fail instead.
class Pieces final : public util::ByteSource {
 public:
  explicit Pieces(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {}
  std::function<asio::awaitable<void>(std::size_t)> before;
  std::optional<std::size_t> fail_at;

  asio::awaitable<std::span<const char>> read_some() override {
    if (next_ == pieces_.size()) co_return std::span<const char>();
    if (before) co_await before(next_);
    if (fail_at == next_) throw ApiError(errc::client_disconnected, "the client went away (test)");
    const auto& piece = pieces_[next_++];
    co_return std::span<const char>(piece);
  }

 private:
  std::vector<std::string> pieces_;
  std::size_t next_ = 0;
};

class Engine : public ::testing::Test {
 protected:
  void SetUp() override {
    auto user = metadata_.create_user("alice", false);
    owner_.user_id = user.id;
    owner_.user_name = user.name;
  }
  static upload::UploadPlan plan(std::string name = "f.bin", std::optional<std::uint64_t> length = std::nullopt) {
    return upload::UploadPlan{.file_name = std::move(name), .exact_length = length, .size_hint = length};
  }
  // Stores `source` as a single-shot upload: the record, or the error a
  // client would see.
  std::variant<db::Upload, errc> store(const upload::UploadPlan& plan, util::ByteSource& source,
                                       const upload::Services* services = nullptr) {
    upload::Uploads uploads(services ? *services : services_);
    try {
      return run(uploads.store(owner_, plan, source));
    } catch (const ApiError& e) {
      return e.code();
    } catch (...) {
      const auto translated = api::api_error(std::current_exception());
      return translated ? translated->code() : errc::internal;
    }
  }
  static std::optional<errc> error_of(const std::variant<db::Upload, errc>& outcome) {
    if (const auto* e = std::get_if<errc>(&outcome)) return *e;
    return std::nullopt;
  }
  // The row the latest upload made, if it made one: the one that was not
  // there at the last next_upload(). (Ids made in one millisecond do not
  // sort by time, so the newest cannot be told by its id.)
  std::optional<db::Upload> the_row() {
    for (const auto& row : metadata_.all_uploads()) {
      if (!earlier_rows_.contains(row.id)) return row;
    }
    return std::nullopt;
  }
  // A loop's next upload: the rows so far are the earlier ones'.
  void next_upload() {
    for (const auto& row : metadata_.all_uploads()) earlier_rows_.insert(row.id);
  }
  std::set<std::string> earlier_rows_;
  std::optional<errc> store_abc() {
    Pieces abc({"abc"});
    return error_of(store(plan(), abc));
  }

  asio::thread_pool pool_{2};
  testing::MemoryObjectStore store_;
  testing::MemoryMetadata metadata_;
  upload::Limits limits_{1024 * 1024, 0, {}, std::nullopt};
  upload::Services services_{store_, metadata_, metadata_, pool_, limits_};
  auth::Principal owner_;
};

TEST_F(Engine, PendingWhileReceivingThenComplete) {
  for (const bool blocking : {false, true}) {
    next_upload();
    SCOPED_TRACE(blocking ? "blocking commit" : "commit");
    store_.blocking_commits = blocking;
    const auto used_before = metadata_.used_bytes(owner_.user_id);
    Pieces source({"0123", "456789"});
    source.before = [&](std::size_t i) -> asio::awaitable<void> {
      // Before a byte is stored the pending row exists, and the janitor
      // knows it is being received here.
      const auto row = the_row();
      EXPECT_TRUE(row && row->status == db::UploadStatus::pending) << "piece " << i;
      if (row) EXPECT_TRUE(services_.live->contains(row->id));
      co_return;
    };
    const auto outcome = store(plan("a.txt", 10), source);
    ASSERT_FALSE(error_of(outcome));
    const auto& stored = std::get<db::Upload>(outcome);
    EXPECT_EQ(stored.sha256, util::sha256_hex("0123456789"));
    EXPECT_EQ(stored.status, db::UploadStatus::complete);
    const auto row = the_row();
    ASSERT_TRUE(row);
    EXPECT_EQ(row->status, db::UploadStatus::complete);
    EXPECT_EQ(row->content_type, "text/plain");  // sniffed: the client named none
    EXPECT_EQ(store_.object(row->storage_key), "0123456789");
    EXPECT_EQ(metadata_.used_bytes(owner_.user_id), used_before + 10);  // its size counts as used
    EXPECT_FALSE(services_.live->contains(row->id));
  }
}

TEST_F(Engine, ARefusedNameStoresNothing) {
  Pieces source({"abc"});
  EXPECT_EQ(error_of(store(plan("bad\x01name"), source)), errc::invalid_file_name);
  EXPECT_FALSE(the_row());
  EXPECT_EQ(store_.object_count(), 0u);
}

TEST_F(Engine, TooManyAtOnceIsRefusedBeforeAnyRow) {
  limits_.max_concurrent_uploads = 1;
  upload::Services services{store_, metadata_, metadata_, pool_, limits_};
  upload::Uploads uploads(services);
  std::optional<errc> second_error;
  Pieces first({"first"});
  first.before = [&](std::size_t) -> asio::awaitable<void> {
    Pieces second({"second"});
    const auto plan_two = plan("two");
    try {
      co_await uploads.store(owner_, plan_two, second);
    } catch (const upload::Error& e) {
      second_error = api::api_error(e).code();
    }
  };
  EXPECT_FALSE(error_of(store(plan("one"), first, &services)));
  EXPECT_EQ(second_error, errc::too_many_requests);
  EXPECT_EQ(metadata_.all_uploads().size(), 1u) << "the refused upload made a row";
}

TEST_F(Engine, ADatabaseFailureAtCreateLeavesNothing) {
  metadata_.fail.create_pending = true;
  Pieces source({"abc"});
  EXPECT_EQ(error_of(store(plan(), source)), errc::database_unavailable);
  EXPECT_FALSE(the_row());
  EXPECT_EQ(store_.object_count(), 0u);
}

TEST_F(Engine, AKnownLengthOverTheQuotaIsRefusedAtCreate) {
  metadata_.set_user_quota("alice", 100);
  owner_.quota_bytes = 100;
  bool read = false;
  Pieces source({std::string(101, 'x')});
  source.before = [&](std::size_t) -> asio::awaitable<void> {
    read = true;
    co_return;
  };
  EXPECT_EQ(error_of(store(plan("big", 101), source)), errc::quota_exceeded);
  EXPECT_FALSE(read) << "a byte was read before the quota said no";
  EXPECT_EQ(the_row()->status, db::UploadStatus::failed);
  EXPECT_EQ(metadata_.used_bytes(owner_.user_id), 0);
  EXPECT_EQ(store_.object_count(), 0u);
}

TEST_F(Engine, FailuresWhileReceivingAbortTheWriterAndFailTheRow) {
  const std::string chunk(600 * 1024, 'x');
  struct Case {
    const char* what;
    std::function<void()> arrange;
    std::optional<std::size_t> source_fails_at;
    errc expected;
  };
  const std::vector<Case> cases = {
      {"over the size limit", [] {}, std::nullopt, errc::file_too_large},
      {"the store fails a write", [&] { store_.fail.write_after = 1000; }, std::nullopt, errc::storage_unavailable},
      {"the client goes away", [] {}, 1, errc::client_disconnected},
  };
  for (const auto& c : cases) {
    next_upload();
    SCOPED_TRACE(c.what);
    store_.fail = {};
    c.arrange();
    const int aborts = store_.aborts;
    const auto used_before = metadata_.used_bytes(owner_.user_id);
    Pieces source({chunk, chunk});  // past 1 MiB
    source.fail_at = c.source_fails_at;
    EXPECT_EQ(error_of(store(plan(), source)), c.expected);
    EXPECT_EQ(the_row()->status, db::UploadStatus::failed);
    EXPECT_EQ(store_.aborts, aborts + 1);
    EXPECT_EQ(store_.object_count(), 0u);
    EXPECT_EQ(metadata_.used_bytes(owner_.user_id), used_before);
  }
}

TEST_F(Engine, ACommitThatFailsLeavesNoObject) {
  for (const bool blocking : {false, true}) {
    next_upload();
    store_.blocking_commits = blocking;
    store_.fail.commit = true;
    EXPECT_EQ(store_abc(), errc::storage_unavailable);
    EXPECT_EQ(the_row()->status, db::UploadStatus::failed);
    EXPECT_EQ(store_.object_count(), 0u);
  }
}

TEST_F(Engine, ADatabaseFailureWhileMarkingCompleteLeavesBothForTheJanitor) {
  for (const bool blocking : {false, true}) {
    next_upload();
    store_.blocking_commits = blocking;
    metadata_.fail.mark_complete = true;
    EXPECT_EQ(store_abc(), errc::database_unavailable);
    metadata_.fail.mark_complete = false;
    // The row may or may not have become complete: the object stays, and so
    // does the pending row, for the janitor to settle.
    const auto row = the_row();
    EXPECT_EQ(row->status, db::UploadStatus::pending);
    EXPECT_EQ(store_.object(row->storage_key), "abc");
    EXPECT_FALSE(services_.live->contains(row->id)) << "the janitor would never settle it";
  }
}

TEST_F(Engine, AnUploadCancelledWhileCommittingHasItsObjectRemoved) {
  metadata_.fail.mark_complete_cancelled = true;
  EXPECT_EQ(store_abc(), errc::conflict);
  EXPECT_FALSE(store_.object(the_row()->storage_key));
}

TEST_F(Engine, TheStoresUploadIdIsOnTheRowBeforeItsFirstBytesAreStored) {
  store_.store_upload_ids = true;
  Pieces source({"abc", "def"});
  std::vector<std::string> seen;
  source.before = [&](std::size_t) -> asio::awaitable<void> {
    seen.push_back(the_row()->store_upload_id);
    co_return;
  };
  EXPECT_FALSE(error_of(store(plan(), source)));
  const std::string expected = "store-upload-" + the_row()->storage_key;
  EXPECT_EQ(seen, (std::vector<std::string>{"", expected}));
}

TEST_F(Engine, ATypeNotAllowedIsRefusedAsItsFirstBytesArrive) {
  limits_.allowed_types = {"image/*"};
  upload::Services services{store_, metadata_, metadata_, pool_, limits_};
  const std::string text(8192, 'a');
  Pieces source({text.substr(0, 5000), text.substr(5000)});
  source.before = [&](std::size_t i) -> asio::awaitable<void> {
    if (i > 0) ADD_FAILURE() << "the first 4 KiB did not decide";
    co_return;
  };
  EXPECT_EQ(error_of(store(plan("x.png"), source, &services)), errc::unsupported_media_type);
  EXPECT_EQ(the_row()->status, db::UploadStatus::failed);
  EXPECT_EQ(store_.object_count(), 0u);
}

}  // namespace
}  // namespace s3up
