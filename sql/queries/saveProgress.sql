-- What a writer made durable, recorded only while it still holds the lease
-- ($2, not lapsed at $3); the lease runs on to $9.
UPDATE resumable_uploads
SET upload_offset = $4, upload_length = $5, store_state = $6, hash_state = $7, expires_at = $8,
    lease_expires_at = $9
WHERE upload_id = $1 AND lease_token = $2 AND lease_expires_at > $3
