-- What a writer made durable, recorded only while it still holds the lease
-- ($2, not given up); the lease runs on to $8 (NULL: given up). A lease that
-- lapsed is still its holder's until another writer takes it, which moves
-- the token on. The token moves on with every change, so a request that read
-- the row before this write cannot take the lease from what it read
-- (takeLease).
UPDATE resumable_uploads
SET upload_offset = $3, upload_length = $4, store_state = $5, hash_state = $6, expires_at = $7,
    lease_expires_at = $8, lease_token = CAST($2 AS bigint) + 1
WHERE upload_id = $1 AND lease_token = $2 AND lease_expires_at IS NOT NULL
