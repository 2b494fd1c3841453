// In-process tests of the request path and the upload session: the router
// (404, 405 with Allow, HEAD through GET, OPTIONS), the API's handlers behind
// their middleware, the error table's headers, and every stage and failure
// path of an upload session. No socket: requests are built here and handlers
// called directly, over in-memory stores (tests/support/memory_stores.hpp).
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include "../support/memory_stores.hpp"
#include "api/api.hpp"
#include "http/router.hpp"
#include "upload/session.hpp"
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
    http::Response res(status);
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
  const auto handler = http::chain({http::request_id(), http::error_answers()}, [&](http::Request& r) { return router(r); });
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
  const auto range = http::error_response(ApiError(errc::range_not_satisfiable, "no", {{"Content-Range", "bytes */10"}}));
  EXPECT_EQ(range.status(), 416u);
  EXPECT_EQ(range[beast_http::field::content_range], "bytes */10");
  EXPECT_EQ(body_of(range), "{\"error\":{\"code\":\"range_not_satisfiable\",\"message\":\"no\"}}\n");
  // What the server itself throws matches the table's codes and statuses.
  for (const auto code : {errc::timeout, errc::client_disconnected, errc::shutting_down, errc::bad_request,
                          errc::file_too_large, errc::uri_too_long, errc::headers_too_large, errc::not_implemented}) {
    const ApiError e(code, "x");
    EXPECT_EQ(e.status(), error_status(code));
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
      api_ = std::make_unique<api::Api>(api::Dependencies{services_, authenticator_, {}, limit});
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
  EXPECT_EQ(checked, 7);  // /healthz, /, /assets/{name}, /files, /files/{id}, /files/{id}/content, /api/config
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

// --- the upload session --------------------------------------------------

class Sessions : public ::testing::Test {
 protected:
  void SetUp() override {
    auto user = metadata_.create_user("alice", false);
    owner_.user_id = user.id;
    owner_.user_name = user.name;
  }
  upload::UploadPlan plan(std::string name = "f.bin", std::optional<std::uint64_t> length = std::nullopt) {
    return upload::UploadPlan{std::move(name), "", length, std::nullopt, length};
  }
  // Runs `steps` with a session, as handlers do (a failure fails the session);
  // the error it threw, if any.
  template <class Steps>
  std::optional<errc> drive(std::optional<upload::UploadSession>& session, Steps steps) {
    try {
      run(upload::with_session(session, [&]() -> asio::awaitable<bool> {
        co_await steps();
        co_return true;
      }));
    } catch (const ApiError& e) {
      return e.code();
    } catch (...) {
      const auto translated = api::api_error(std::current_exception());
      return translated ? translated->code() : errc::internal;
    }
    return std::nullopt;
  }
  // The whole of a small upload ("abc") in one session: the error, if any.
  std::optional<errc> store_abc(std::optional<upload::UploadSession>& s) {
    return drive(s, [&]() -> asio::awaitable<void> {
      s.emplace(services_, owner_, plan());
      co_await s->create();
      co_await s->append(0, std::span<const char>("abc", 3));
      co_await s->complete();
    });
  }
  std::optional<db::Upload> row(const upload::UploadSession& s) { return metadata_.get_upload(s.id()); }
  std::string key(const upload::UploadSession& s) { return "u/" + std::to_string(owner_.user_id) + "/" + s.id(); }

  asio::thread_pool pool_{2};
  testing::MemoryObjectStore store_;
  testing::MemoryMetadata metadata_;
  upload::Limits limits_{1024 * 1024, 0, {}, std::nullopt};
  upload::Services services_{store_, metadata_, metadata_, pool_, limits_};
  auth::Principal owner_;
};

TEST_F(Sessions, CreatedReceivingComplete) {
  for (const bool blocking : {false, true}) {
    SCOPED_TRACE(blocking ? "blocking commit" : "commit");
    store_.blocking_commits = blocking;
    const auto used_before = metadata_.used_bytes(owner_.user_id);
    std::optional<upload::UploadSession> s;
    s.emplace(services_, owner_, plan("a.txt", 10));
    EXPECT_EQ(s->stage(), upload::Stage::created);
    const std::string bytes = "0123456789";
    db::Upload stored;
    EXPECT_FALSE(drive(s, [&]() -> asio::awaitable<void> {
      co_await s->create();
      EXPECT_EQ(s->stage(), upload::Stage::receiving);
      EXPECT_EQ(row(*s)->status, db::UploadStatus::pending);
      co_await s->append(0, std::span<const char>(bytes.data(), 4));
      co_await s->append(4, std::span<const char>(bytes.data() + 4, 6));
      EXPECT_EQ(s->offset(), 10u);
      stored = co_await s->complete();
    }));
    EXPECT_EQ(s->stage(), upload::Stage::complete);
    EXPECT_EQ(stored.sha256, util::sha256_hex(bytes));
    EXPECT_EQ(row(*s)->status, db::UploadStatus::complete);
    EXPECT_EQ(row(*s)->content_type, "text/plain");  // sniffed: the client named none
    EXPECT_EQ(store_.object(key(*s)), bytes);
    EXPECT_EQ(metadata_.used_bytes(owner_.user_id), used_before + 10);  // its size counts as used
    EXPECT_FALSE(services_.live->contains(s->id()));
  }
}

TEST_F(Sessions, ARefusedNameStoresNothing) {
  std::optional<upload::UploadSession> s;
  EXPECT_EQ(drive(s, [&]() -> asio::awaitable<void> {
              s.emplace(services_, owner_, plan("bad\x01name"));
              co_await s->create();
            }),
            errc::invalid_file_name);
  EXPECT_EQ(s->stage(), upload::Stage::failed);
  EXPECT_EQ(metadata_.count_uploads(db::UploadStatus::pending) + metadata_.count_uploads(db::UploadStatus::failed), 0);
  EXPECT_FALSE(services_.live->contains(s->id()));
}

TEST_F(Sessions, TooManyAtOnceIsRefusedBeforeAnyRow) {
  limits_.max_concurrent_uploads = 1;
  upload::Services services{store_, metadata_, metadata_, pool_, limits_};
  std::optional<upload::UploadSession> first, second;
  EXPECT_FALSE(drive(first, [&]() -> asio::awaitable<void> {
    first.emplace(services, owner_, plan());
    co_await first->create();
  }));
  EXPECT_EQ(drive(second, [&]() -> asio::awaitable<void> {
              second.emplace(services, owner_, plan());
              co_await second->create();
            }),
            errc::too_many_requests);
  EXPECT_FALSE(row(*second));
  run(first->fail());
}

TEST_F(Sessions, ADatabaseFailureAtCreateLeavesNothing) {
  metadata_.fail.create_pending = true;
  std::optional<upload::UploadSession> s;
  EXPECT_EQ(drive(s, [&]() -> asio::awaitable<void> {
              s.emplace(services_, owner_, plan());
              co_await s->create();
            }),
            errc::database_unavailable);
  EXPECT_FALSE(row(*s));
  EXPECT_FALSE(services_.live->contains(s->id())) << "still registered as live";
  s.reset();
}

TEST_F(Sessions, AKnownLengthOverTheQuotaIsRefusedAtCreate) {
  metadata_.set_user_quota("alice", 100);
  owner_.quota_bytes = 100;
  std::optional<upload::UploadSession> s;
  EXPECT_EQ(drive(s, [&]() -> asio::awaitable<void> {
              s.emplace(services_, owner_, plan("big", 101));
              co_await s->create();
            }),
            errc::quota_exceeded);
  EXPECT_EQ(row(*s)->status, db::UploadStatus::failed);
  EXPECT_EQ(metadata_.used_bytes(owner_.user_id), 0);
  EXPECT_EQ(store_.object_count(), 0u);
}

TEST_F(Sessions, AWrongOffsetIsAConflictAndChangesNothing) {
  std::optional<upload::UploadSession> s;
  s.emplace(services_, owner_, plan());
  run(s->create());
  const std::string bytes = "abc";
  try {
    run(s->append(5, std::span<const char>(bytes)));
    FAIL() << "an append at the wrong offset was taken";
  } catch (const upload::Error& e) {
    EXPECT_EQ(e.failure(), upload::Failure::conflict);
  }
  EXPECT_EQ(s->offset(), 0u);
  EXPECT_EQ(s->stage(), upload::Stage::receiving);
  run(s->fail());
  EXPECT_EQ(s->stage(), upload::Stage::failed);
  EXPECT_EQ(row(*s)->status, db::UploadStatus::failed);
  EXPECT_EQ(store_.aborts, 1);
}

TEST_F(Sessions, FailuresWhileReceivingAbortTheWriterAndFailTheRow) {
  const std::string chunk(600 * 1024, 'x');
  struct Case {
    const char* what;
    std::function<void()> arrange;
    errc expected;
  };
  const std::vector<Case> cases = {
      {"over the size limit", [] {}, errc::file_too_large},
      {"the store fails a write", [&] { store_.fail.write_after = 1000; }, errc::storage_unavailable},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    store_.fail = {};
    c.arrange();
    const int aborts = store_.aborts;
    std::optional<upload::UploadSession> s;
    EXPECT_EQ(drive(s, [&]() -> asio::awaitable<void> {
                s.emplace(services_, owner_, plan());
                co_await s->create();
                co_await s->append(0, std::span<const char>(chunk));
                co_await s->append(chunk.size(), std::span<const char>(chunk));  // past 1 MiB
              }),
              c.expected);
    EXPECT_EQ(s->stage(), upload::Stage::failed);
    EXPECT_EQ(row(*s)->status, db::UploadStatus::failed);
    EXPECT_EQ(store_.aborts, aborts + 1);
    EXPECT_EQ(store_.object_count(), 0u);
  }
}

TEST_F(Sessions, ACommitThatFailsLeavesNoObject) {
  for (const bool blocking : {false, true}) {
    store_.blocking_commits = blocking;
    store_.fail.commit = true;
    std::optional<upload::UploadSession> s;
    EXPECT_EQ(store_abc(s),
              errc::storage_unavailable);
    EXPECT_EQ(s->stage(), upload::Stage::failed);
    EXPECT_EQ(row(*s)->status, db::UploadStatus::failed);
    EXPECT_EQ(store_.object_count(), 0u);
  }
}

TEST_F(Sessions, ADatabaseFailureWhileMarkingCompleteLeavesBothForTheJanitor) {
  for (const bool blocking : {false, true}) {
    store_.blocking_commits = blocking;
    metadata_.fail.mark_complete = true;
    std::optional<upload::UploadSession> s;
    EXPECT_EQ(store_abc(s),
              errc::database_unavailable);
    // The row may or may not have become complete: the object stays, and so
    // does the pending row, for the janitor to settle.
    EXPECT_EQ(s->stage(), upload::Stage::completion_unknown);
    EXPECT_EQ(row(*s)->status, db::UploadStatus::pending);
    EXPECT_EQ(store_.object(key(*s)), "abc");
  }
}

TEST_F(Sessions, AnUploadCancelledWhileCommittingHasItsObjectRemoved) {
  metadata_.fail.mark_complete_cancelled = true;
  std::optional<upload::UploadSession> s;
  EXPECT_EQ(store_abc(s),
            errc::conflict);
  EXPECT_EQ(s->stage(), upload::Stage::failed);
  EXPECT_FALSE(store_.object(key(*s)));
}

TEST_F(Sessions, TheStoresUploadIdIsOnTheRowBeforeItsFirstBytesAreStored) {
  store_.store_upload_ids = true;
  std::optional<upload::UploadSession> s;
  s.emplace(services_, owner_, plan());
  run(s->create());
  EXPECT_TRUE(row(*s)->store_upload_id.empty());
  run(s->append(0, std::span<const char>("abc", 3)));
  EXPECT_EQ(row(*s)->store_upload_id, "store-upload-" + key(*s));
  run(s->fail());
}

TEST_F(Sessions, ATypeNotAllowedIsRefusedAsItsFirstBytesArrive) {
  limits_.allowed_types = {"image/*"};
  upload::Services services{store_, metadata_, metadata_, pool_, limits_};
  const std::string text(8192, 'a');
  std::optional<upload::UploadSession> s;
  EXPECT_EQ(drive(s, [&]() -> asio::awaitable<void> {
              s.emplace(services, owner_, plan("x.png"));
              co_await s->create();
              co_await s->append(0, std::span<const char>(text.data(), 5000));
              ADD_FAILURE() << "the first 4 KiB did not decide";
            }),
            errc::unsupported_media_type);
  EXPECT_EQ(row(*s)->status, db::UploadStatus::failed);
  EXPECT_EQ(store_.object_count(), 0u);
}

}  // namespace
}  // namespace s3up
