-- A writer done with its request lets the next one in at once. NULL, unlike
-- a lapsed time, says it is done with the store too; the token moves on.
UPDATE resumable_uploads SET lease_expires_at = NULL, lease_token = lease_token + 1
WHERE upload_id = $1 AND lease_token = $2
