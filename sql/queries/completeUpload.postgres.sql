-- One statement (it travels in a pipelined batch): complete the row, and move
-- its owner's usage from the reservation to the real size.
WITH done AS (
  UPDATE uploads
  SET status = 'complete', file_size = $2, content_type = $3, sha256 = $4, completed_at = $5,
      store_leftovers = $6
  WHERE id = $1 AND status = 'pending'
  RETURNING user_id, reserved_bytes
)
UPDATE users SET used_bytes = users.used_bytes - done.reserved_bytes + $2
FROM done WHERE users.id = done.user_id
