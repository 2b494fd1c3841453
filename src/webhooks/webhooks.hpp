#pragma once
// Webhooks: telling the app what happened to its uploads, never losing it.
//
// The events are recorded by the database in the transaction of the change
// they report (db::WebhookOutbox, sql/schema/0012_webhooks). A Deliverer on
// each instance claims due deliveries, signs them as Standard Webhooks says
// (webhook-id, webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256
// of id.timestamp.body>), POSTs them, and marks them delivered on a 2xx.
// Anything else is tried again with exponential backoff and jitter (5 s
// doubling to 1 h, or the Retry-After of a 429 or 503) until the event is
// older than max_age; then it is dead. A 410 disables its endpoint until an
// operator enables it again. A receiver sees an event at least once, with
// the same webhook-id every time, and dedupes by it.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/thread_pool.hpp>

#include "db/metadata_store.hpp"
#include "upload/engine.hpp"

namespace s3up::webhooks {

// Every event type, as webhook_events names them.
inline const std::vector<std::string> kEventTypes = {"upload.created", "upload.completed", "upload.failed",
                                                     "upload.deleted", "upload_link.used"};

struct WebhookSettings {
  std::vector<std::string> urls;     // https:// (or http:// on loopback)
  std::vector<std::string> secrets;  // whsec_<base64>; each signs (two while rotating)
  std::vector<std::string> events;   // empty: all of kEventTypes
  std::chrono::milliseconds timeout{10'000};
  std::chrono::milliseconds max_age{3LL * 24 * 3600 * 1000};    // then a delivery is dead
  std::chrono::milliseconds retention{7LL * 24 * 3600 * 1000};  // delivered ones are kept this long
  std::string ca_file;  // extra CA bundle (PEM), beside the system's
  // The pre-upload hook: asked before every upload's pending row.
  std::string pre_upload_hook_url;  // https:// (or http:// on loopback); empty: none
  std::chrono::milliseconds pre_upload_hook_timeout{5'000};
  bool pre_upload_hook_fail_open = false;  // when it cannot be asked: let uploads through (logged), not 503
  bool enabled() const { return !urls.empty(); }
  // The event types recorded.
  std::vector<std::string> event_types() const { return events.empty() ? kEventTypes : events; }
  // Why these settings cannot work (empty when they can): a URL that is not
  // https, no secret (for webhooks or the hook), a secret that is not
  // whsec_ + base64, an unknown event.
  std::string problem() const;
};

// A Standard Webhooks signature header value: "v1,<base64>" for each secret,
// separated by spaces. Secrets as configured (whsec_ + base64 of the key).
std::string signature(const std::vector<std::string>& secrets, std::string_view id, std::int64_t timestamp,
                      std::string_view body);

// The body sent for a delivery: {"type", "timestamp", "data": {the file as
// GET /files/{id} shows it, "user_name", "metadata"}}; the same bytes on
// every attempt.
std::string payload(const db::WebhookDelivery& delivery);

// The next attempt after `attempts` failed ones: 5 s doubling to 1 h, with
// up to a fifth more or less at random; at least `retry_after` if the
// endpoint asked for it.
std::chrono::milliseconds backoff(int attempts, std::chrono::seconds retry_after = {});

// Delivers from the outbox on its own threads until stopped: at most
// kConcurrency requests at once, each on a kept connection.
class Deliverer {
 public:
  static constexpr int kConcurrency = 4;
  Deliverer(db::WebhookOutbox& outbox, WebhookSettings settings, std::string user_agent);
  ~Deliverer();  // stops
  Deliverer(const Deliverer&) = delete;
  Deliverer& operator=(const Deliverer&) = delete;
  void start();
  void stop();  // waits for the requests under way (at most the timeout)

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// The pre-upload hook: before an upload's pending row, the service POSTs
// {user, file_name, declared_type, length, metadata, source, client_ip,
// request_id}, signed as the webhooks are, and waits for 200 {"allow": true}
// (optionally with "file_name" to store it under and "metadata" to add) or
// {"allow": false, "status": 403|413|415|422, "message": "..."}. A timeout,
// another status or an answer it cannot read refuses the upload with 503
// (fails closed), or lets it through when pre_upload_hook_fail_open says so.
class PreUploadHook final : public upload::UploadGate {
 public:
  static constexpr int kConcurrency = 8;  // hook requests at once; more wait for one of these
  PreUploadHook(const WebhookSettings& settings, std::string user_agent);
  ~PreUploadHook() override;
  boost::asio::awaitable<upload::UploadVerdict> decide(const upload::UploadProposal& proposal) override;

 private:
  upload::UploadVerdict unavailable(const std::string& why, const upload::UploadProposal& proposal) const;
  const std::string url_;
  const std::vector<std::string> secrets_;
  const bool fail_open_;
  struct Options;
  std::unique_ptr<Options> options_;
  boost::asio::thread_pool pool_{kConcurrency};
};

}  // namespace s3up::webhooks
