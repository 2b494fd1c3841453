#pragma once
// Each table's row decoded in one place, for both backends. A query returns
// a table's columns in the order below (the SQL files under sql/queries say
// which they return); a backend hands its result row over as a Row.
#include <cstdint>
#include <optional>
#include <string>

#include "db/metadata_store.hpp"

namespace s3up::db {

// One result row as the backend reads its columns.
class Row {
 public:
  virtual ~Row() = default;
  virtual bool is_null(int column) const = 0;
  virtual std::string text(int column) const = 0;
  virtual std::int64_t integer(int column) const = 0;
  virtual bool boolean(int column) const = 0;
  virtual Micros timestamp(int column) const = 0;

  std::optional<std::int64_t> optional_integer(int column) const {
    return is_null(column) ? std::nullopt : std::optional(integer(column));
  }
  std::optional<Micros> optional_timestamp(int column) const {
    return is_null(column) ? std::nullopt : std::optional(timestamp(column));
  }
  std::optional<std::string> optional_text(int column) const {
    return is_null(column) ? std::nullopt : std::optional(text(column));
  }
};

// users: id, name, is_admin, disabled, created_at, quota_bytes, used_bytes,
// issuer, whether deleting_at is set
inline constexpr int kUserColumns = 9;
User decode_user(const Row& row, int first = 0);

// api_tokens: id, user_id, the user's name, name, created_at, expires_at, revoked_at
inline constexpr int kTokenColumns = 7;
ApiToken decode_token(const Row& row, int first = 0);

// A token's columns, then its user's (findTokenByHash).
TokenOwner decode_token_owner(const Row& row);

// uploads: id, user_id, file_name, file_size, content_type, sha256,
// storage_key, store_upload_id, status, created_at, completed_at, upload_link_id
inline constexpr int kUploadColumns = 12;
Upload decode_upload(const Row& row, int first = 0);

// upload_links: id, user_id, note, allowed_types, max_files, max_bytes,
// files_used, bytes_used, created_at, expires_at, revoked_at
UploadLink decode_upload_link(const Row& row);

// resumable_uploads: upload_id, upload_length, upload_offset, metadata,
// part_size, store_state, hash_state, expires_at, lease_token, lease_expires_at,
// and the upload's reserved_bytes
inline constexpr int kResumableColumns = 11;
ResumableState decode_resumable(const Row& row, int first = 0);

// webhook_deliveries as claimDeliveries returns them: seq, event_id,
// endpoint, event_type, created_at, attempts, the upload's columns as above
// (storage_key and store_upload_id empty), user_name, metadata
WebhookDelivery decode_delivery(const Row& row);
// listDeliveries' columns: seq, event_id, endpoint, event_type, upload_id,
// status, attempts, created_at, next_attempt_at, last_error, delivered_at
DeliveryRecord decode_delivery_record(const Row& row);
// webhook_endpoints: url, disabled_at, reason
DisabledEndpoint decode_disabled_endpoint(const Row& row);

}  // namespace s3up::db
