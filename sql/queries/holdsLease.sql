-- Whether the write lease is still the one a writer holds ($2): nobody took
-- it and it was not given up since. A read, so a writer can ask before each
-- change to the store without a write each time.
SELECT 1 FROM resumable_uploads WHERE upload_id = $1 AND lease_token = $2 AND lease_expires_at IS NOT NULL
