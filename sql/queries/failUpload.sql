-- SQLite: the caller then gives the reservation back (adjustUsage), and the
-- link's share, if it came through one (releaseLink).
UPDATE uploads SET status = 'failed', completed_at = $2, store_leftovers = $3 WHERE id = $1 AND status = 'pending'
RETURNING user_id, reserved_bytes, upload_link_id, link_bytes
