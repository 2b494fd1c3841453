WITH failed AS (
  UPDATE uploads SET status = 'failed', completed_at = $2, store_leftovers = $3 WHERE id = $1 AND status = 'pending'
  RETURNING user_id, reserved_bytes
)
UPDATE users SET used_bytes = users.used_bytes - failed.reserved_bytes
FROM failed WHERE users.id = failed.user_id
