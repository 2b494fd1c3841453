#pragma once
// What both databases share of the webhook outbox (WebhookOutbox): which
// events are recorded for which endpoints, and how a lifecycle write asks
// for its event (sql/queries/recordEvent.sql).
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "db/metadata_store.hpp"

namespace s3up::db {

// One event a lifecycle write records: recordEvent's parameters but the
// endpoints and the time.
struct EventToRecord {
  std::string_view type;
  std::string_view status, or_status;  // the row must be in one of these
  bool through_link_only = false;
};

inline constexpr EventToRecord kUploadCreated{"upload.created", "pending", "pending"};
inline constexpr EventToRecord kUploadCompleted{"upload.completed", "complete", "complete"};
// Recorded only for an Upload with its upload_link_id (as the row has it).
inline constexpr EventToRecord kUploadLinkUsed{"upload_link.used", "complete", "complete", true};
inline constexpr EventToRecord kUploadFailed{"upload.failed", "failed", "failed"};
// Recorded just before the row goes, of a file (not of a failed upload).
inline constexpr EventToRecord kUploadDeleted{"upload.deleted", "complete", "deleting"};

class EventRecording {
 public:
  void set(const std::vector<std::string>& endpoints, const std::vector<std::string>& types);
  // The endpoints to record `type` for, as a JSON array; nullopt when none.
  std::optional<std::string> endpoints_for(std::string_view type) const;

  // WebhookOutbox::hand_claimed_to.
  void hand_to(DeliveryTaker take, Micros lease);
  // Until when a delivery this process records or releases is claimed for
  // its own deliverer; nullopt when there is none (it waits for a claim).
  std::optional<Micros> claim_until(Micros now) const;
  // To the deliverer, once the transaction that claimed them committed.
  void hand_over(std::vector<WebhookDelivery> claimed) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::string, std::less<>> endpoints_by_type_;
  DeliveryTaker take_;
  Micros lease_ = 0;
};

}  // namespace s3up::db
