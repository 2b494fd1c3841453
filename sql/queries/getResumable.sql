-- A resumable upload's progress, in the order db/rows.hpp decodes it, with
-- the quota its upload has reserved so far.
SELECT r.upload_id, r.upload_length, r.upload_offset, r.metadata, r.part_size, r.store_state, r.hash_state,
       r.expires_at, r.lease_token, r.lease_expires_at, u.reserved_bytes
FROM resumable_uploads r JOIN uploads u ON u.id = r.upload_id
WHERE r.upload_id = $1
