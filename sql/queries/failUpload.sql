-- SQLite: the caller then gives the reservation back (adjustUsage).
UPDATE uploads SET status = 'failed', completed_at = $2, store_leftovers = $3 WHERE id = $1 AND status = 'pending'
RETURNING user_id, reserved_bytes
