-- SQLite, the first step of an upload through a link: one file and its
-- bytes reserved only while the link is usable and they fit, in one
-- conditional UPDATE (so uploads through it on several instances never pass
-- its limits together); then uploadFileThroughLink, in the same transaction.
UPDATE upload_links SET files_used = files_used + 1, bytes_used = bytes_used + $2
WHERE id = $1 AND revoked_at IS NULL AND expires_at > $3
  AND (max_files IS NULL OR files_used < max_files)
  AND (max_bytes IS NULL OR bytes_used + $2 <= max_bytes)
