// The statuses' names as the database stores them (metadata_store.hpp).
// A file of their own: what reads a row's status needs nothing else of the
// database layer (the fuzzers link these alone).
#include "db/metadata_store.hpp"

namespace s3up::db {

std::string_view to_string(UploadStatus s) {
  switch (s) {
    case UploadStatus::pending: return "pending";
    case UploadStatus::complete: return "complete";
    case UploadStatus::failed: return "failed";
    case UploadStatus::deleting: return "deleting";
  }
  return "failed";
}

UploadStatus upload_status_from(std::string_view s) {
  if (s == "pending") return UploadStatus::pending;
  if (s == "complete") return UploadStatus::complete;
  if (s == "deleting") return UploadStatus::deleting;
  return UploadStatus::failed;
}

std::string_view to_string(DeliveryStatus s) {
  switch (s) {
    case DeliveryStatus::pending: return "pending";
    case DeliveryStatus::delivered: return "delivered";
    case DeliveryStatus::dead: return "dead";
  }
  return "pending";
}

std::optional<DeliveryStatus> delivery_status_from(std::string_view s) {
  if (s == "pending") return DeliveryStatus::pending;
  if (s == "delivered") return DeliveryStatus::delivered;
  if (s == "dead") return DeliveryStatus::dead;
  return std::nullopt;
}

}  // namespace s3up::db
