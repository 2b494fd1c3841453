-- A new writer takes the upload if the lease it saw ($2) is still the
-- current one and free or lapsed at $3; its token is $2 + 1, so a writer
-- that held an older one is fenced off from then on.
UPDATE resumable_uploads SET lease_token = CAST($2 AS bigint) + 1, lease_expires_at = $4
WHERE upload_id = $1 AND lease_token = $2 AND (lease_expires_at IS NULL OR lease_expires_at <= $3)
