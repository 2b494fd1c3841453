-- Webhook deliveries due at $1, claimed until $2: their next attempt moves
-- to the lease's end, so no other deliverer takes them before it (one does
-- after it, as when this instance dies mid-way). At most $3, oldest due
-- first. Held ones wait (0013_webhook_holds), so the due index, walked in
-- order, has nothing else to check: a backlog of any size costs the same.
UPDATE webhook_deliveries SET next_attempt_at = $2, attempts = attempts + 1
WHERE seq IN (SELECT seq FROM webhook_deliveries
              WHERE status = 'pending' AND held = false AND next_attempt_at <= $1
              ORDER BY next_attempt_at, seq
              LIMIT $3)
RETURNING seq, event_id, endpoint, event_type, created_at, attempts,
          upload_id, user_id, file_name, file_size, content_type, sha256, '', '', upload_status, upload_created_at,
          completed_at, upload_link_id, user_name, metadata
