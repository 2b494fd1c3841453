-- A resumable upload's progress, in the order db/rows.hpp decodes it.
SELECT upload_id, upload_length, upload_offset, metadata, part_size, store_state, hash_state, expires_at,
       lease_token, lease_expires_at
FROM resumable_uploads WHERE upload_id = $1
