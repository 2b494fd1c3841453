-- SQLite: the caller then moves the user's usage from the reservation to the
-- size (adjustUsage), in the same transaction.
UPDATE uploads
SET status = 'complete', file_size = $2, content_type = $3, sha256 = $4, completed_at = $5,
      store_leftovers = $6
WHERE id = $1 AND status = 'pending'
RETURNING user_id, reserved_bytes
