-- A writer done with its request lets the next one in at once.
UPDATE resumable_uploads SET lease_expires_at = NULL WHERE upload_id = $1 AND lease_token = $2
