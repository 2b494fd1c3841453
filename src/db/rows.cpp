#include "db/rows.hpp"

namespace s3up::db {

User decode_user(const Row& row, int first) {
  User u;
  u.id = row.integer(first);
  u.name = row.text(first + 1);
  u.is_admin = row.boolean(first + 2);
  u.disabled = row.boolean(first + 3);
  u.created_at = row.timestamp(first + 4);
  u.quota_bytes = row.optional_integer(first + 5);
  u.used_bytes = row.integer(first + 6);
  u.issuer = row.optional_text(first + 7);
  u.deleting = row.boolean(first + 8);
  return u;
}

ApiToken decode_token(const Row& row, int first) {
  ApiToken t;
  t.id = row.text(first);
  t.user_id = row.integer(first + 1);
  t.user_name = row.text(first + 2);
  t.name = row.text(first + 3);
  t.created_at = row.timestamp(first + 4);
  t.expires_at = row.optional_timestamp(first + 5);
  t.revoked_at = row.optional_timestamp(first + 6);
  return t;
}

TokenOwner decode_token_owner(const Row& row) { return TokenOwner{decode_token(row), decode_user(row, kTokenColumns)}; }

Upload decode_upload(const Row& row, int first) {
  Upload u;
  u.id = row.text(first);
  u.user_id = row.integer(first + 1);
  u.file_name = row.text(first + 2);
  u.file_size = static_cast<std::uint64_t>(row.integer(first + 3));
  u.content_type = row.text(first + 4);
  u.sha256 = row.text(first + 5);
  u.storage_key = row.text(first + 6);
  u.store_upload_id = row.text(first + 7);
  u.status = upload_status_from(row.text(first + 8));
  u.created_at = row.timestamp(first + 9);
  u.completed_at = row.optional_timestamp(first + 10);
  u.upload_link_id = row.optional_text(first + 11);
  return u;
}

WebhookDelivery decode_delivery(const Row& row) {
  WebhookDelivery d;
  d.seq = row.integer(0);
  d.event_id = row.text(1);
  d.endpoint = row.text(2);
  d.event_type = row.text(3);
  d.created_at = row.timestamp(4);
  d.attempts = static_cast<int>(row.integer(5));
  d.upload = decode_upload(row, 6);
  d.user_name = row.text(6 + kUploadColumns);
  d.metadata = row.text(7 + kUploadColumns);
  return d;
}

DeliveryRecord decode_delivery_record(const Row& row) {
  DeliveryRecord d;
  d.seq = row.integer(0);
  d.event_id = row.text(1);
  d.endpoint = row.text(2);
  d.event_type = row.text(3);
  d.upload_id = row.optional_text(4).value_or("");
  d.status = delivery_status_from(row.text(5)).value_or(DeliveryStatus::pending);
  d.attempts = static_cast<int>(row.integer(6));
  d.created_at = row.timestamp(7);
  d.next_attempt_at = row.timestamp(8);
  d.last_error = row.text(9);
  d.delivered_at = row.optional_timestamp(10);
  return d;
}

DisabledEndpoint decode_disabled_endpoint(const Row& row) {
  return {row.text(0), row.timestamp(1), row.text(2)};
}

UploadLink decode_upload_link(const Row& row) {
  UploadLink l;
  l.id = row.text(0);
  l.user_id = row.integer(1);
  l.note = row.text(2);
  l.allowed_types = row.text(3);
  l.max_files = row.optional_integer(4);
  l.max_bytes = row.optional_integer(5);
  l.files_used = row.integer(6);
  l.bytes_used = row.integer(7);
  l.created_at = row.timestamp(8);
  l.expires_at = row.timestamp(9);
  l.revoked_at = row.optional_timestamp(10);
  return l;
}

ResumableState decode_resumable(const Row& row, int first) {
  ResumableState r;
  r.upload_id = row.text(first);
  if (const auto length = row.optional_integer(first + 1)) r.upload_length = static_cast<std::uint64_t>(*length);
  r.offset = static_cast<std::uint64_t>(row.integer(first + 2));
  r.metadata = row.text(first + 3);
  r.part_size = static_cast<std::uint64_t>(row.integer(first + 4));
  r.store_state = row.text(first + 5);
  r.hash_state = row.text(first + 6);
  r.expires_at = row.timestamp(first + 7);
  r.lease_token = row.integer(first + 8);
  r.lease_expires_at = row.optional_timestamp(first + 9);
  r.reserved_bytes = static_cast<std::uint64_t>(row.integer(first + 10));
  return r;
}

}  // namespace s3up::db
