#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include "upload/file_json.hpp"
#include "upload/policy.hpp"
#include "util/blocking.hpp"
#include "util/ids.hpp"
#include "util/text.hpp"
#include "webhooks/signed_post.hpp"
#include "webhooks/webhooks.hpp"

namespace s3up::webhooks {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr std::size_t kMaxMessageBytes = 1000;

std::string question(const upload::UploadProposal& p) {
  const json::object body{
      {"user", json::object{{"id", p.owner.user_id}, {"name", p.owner.user_name}}},
      {"file_name", p.file_name},
      {"declared_type", p.declared_type},
      {"length", p.length ? json::value(*p.length) : json::value(nullptr)},
      {"metadata", upload::metadata_json(p.metadata)},
      {"source", p.requester.source},
      {"client_ip", p.requester.client_ip},
      {"request_id", p.requester.request_id},
  };
  return json::serialize(body);
}

// A refusal as the hook worded it: its status (403 unless 413, 415 or 422)
// and its message (a plain one if it gave none fit to show).
upload::Error refusal(const json::object& answer) {
  using upload::Failure;
  std::string message = "refused by the service's pre-upload check";
  if (const auto* m = answer.if_contains("message"); m && m->is_string()) {
    std::string_view text = m->get_string();
    if (!text.empty() && text.size() <= kMaxMessageBytes && util::is_displayable_text(text)) message = text;
  }
  std::int64_t status = 403;
  if (const auto* s = answer.if_contains("status"); s && s->is_int64()) status = s->get_int64();
  switch (status) {
    case 413: return upload::Error(Failure::too_large, message);
    case 415: return upload::Error(Failure::type_refused, message);
    case 422: return upload::Error(Failure::unprocessable, message);
    default: return upload::Error(Failure::refused, message);
  }
}

}  // namespace

struct PreUploadHook::Options {
  PostOptions post;
};

PreUploadHook::PreUploadHook(const WebhookSettings& settings, std::string user_agent)
    : url_(settings.pre_upload_hook_url),
      secrets_(settings.secrets),
      fail_open_(settings.pre_upload_hook_fail_open),
      options_(std::make_unique<Options>()) {
  options_->post.timeout = settings.pre_upload_hook_timeout;
  options_->post.user_agent = std::move(user_agent);
  options_->post.ca_file = settings.ca_file;
  start_curl();
}

PreUploadHook::~PreUploadHook() { pool_.join(); }

upload::UploadVerdict PreUploadHook::unavailable(const std::string& why, const upload::UploadProposal& p) const {
  if (fail_open_) {
    spdlog::warn("pre-upload hook: {} (request {}); letting the upload through (pre_upload_hook_fail_open)", why,
                 p.requester.request_id);
    return {};
  }
  spdlog::warn("pre-upload hook: {} (request {}); the upload is refused with 503", why, p.requester.request_id);
  throw upload::Error(upload::Failure::check_unavailable,
                      "the service's pre-upload check cannot be reached; try again shortly");
}

asio::awaitable<upload::UploadVerdict> PreUploadHook::decide(const upload::UploadProposal& proposal) {
  const std::string body = question(proposal);
  const std::string id = "hook_" + util::uuid_v7();
  struct Reply {
    Answer answer;
    std::string body;
  };
  // A thread of the hook's own pool waits for the answer: at most
  // kConcurrency at once, and never one the database or the disk needs.
  Reply reply = co_await util::run_blocking(pool_, [&] {
    // Its connection is kept for the next question on this thread.
    thread_local const std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
    Reply r;
    r.answer = post_signed(curl.get(), {.url = url_, .id = id, .body = body}, secrets_, options_->post, &r.body);
    return r;
  });
  if (reply.answer.status == 0) co_return unavailable(reply.answer.error, proposal);
  if (reply.answer.status != 200) co_return unavailable("it answered HTTP " + std::to_string(reply.answer.status), proposal);
  boost::system::error_code ec;
  const json::value parsed = json::parse(reply.body, ec);
  const auto* answer = ec ? nullptr : parsed.if_object();
  const auto* allow = answer ? answer->if_contains("allow") : nullptr;
  if (!allow || !allow->is_bool()) co_return unavailable("its answer is not JSON with a boolean \"allow\"", proposal);
  if (!allow->get_bool()) {
    const auto refused = refusal(*answer);
    spdlog::info("pre-upload hook: refused {} for {} (request {}): {}", proposal.file_name,
                 proposal.owner.user_name, proposal.requester.request_id, refused.what());
    throw refused;
  }
  upload::UploadVerdict verdict;
  if (const auto* name = answer->if_contains("file_name"); name && !name->is_null()) {
    if (!name->is_string() || !upload::is_acceptable_file_name(name->get_string())) {
      co_return unavailable("its answer names a file_name that is not a usable name", proposal);
    }
    verdict.file_name = std::string(name->get_string());
  }
  if (const auto* metadata = answer->if_contains("metadata"); metadata && !metadata->is_null()) {
    const auto* pairs = metadata->if_object();
    if (!pairs) co_return unavailable("its answer's metadata is not an object of strings", proposal);
    for (const auto& [key, value] : *pairs) {
      const bool key_ok = !key.empty() && key.find_first_of(" ,") == json::string_view::npos &&
                          util::is_displayable_text(key);
      if (!key_ok || !value.is_string()) co_return unavailable("its answer's metadata is not an object of strings", proposal);
      verdict.metadata.emplace_back(std::string(key), std::string(value.get_string()));
    }
  }
  co_return verdict;
}

}  // namespace s3up::webhooks
