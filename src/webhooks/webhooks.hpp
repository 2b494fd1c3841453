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

#include "db/metadata_store.hpp"

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
  bool enabled() const { return !urls.empty(); }
  // The event types recorded.
  std::vector<std::string> event_types() const { return events.empty() ? kEventTypes : events; }
  // Why these settings cannot work (empty when they can): a URL that is not
  // https, no secret, a secret that is not whsec_ + base64, an unknown event.
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

}  // namespace s3up::webhooks
