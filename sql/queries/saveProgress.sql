-- What a writer made durable, recorded only while it still holds the lease
-- ($2, not lapsed at $3); the lease runs on to $9 (NULL: given up). The
-- token moves on with every change, so a request that read the row before
-- this write cannot take the lease from what it read (takeLease).
UPDATE resumable_uploads
SET upload_offset = $4, upload_length = $5, store_state = $6, hash_state = $7, expires_at = $8,
    lease_expires_at = $9, lease_token = CAST($2 AS bigint) + 1
WHERE upload_id = $1 AND lease_token = $2 AND lease_expires_at > $3
