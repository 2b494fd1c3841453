-- claimDeliveries.sql, with the candidates locked as they are picked and
-- those another instance is claiming right now skipped, not waited for.
UPDATE webhook_deliveries SET next_attempt_at = $2, attempts = attempts + 1
WHERE seq IN (SELECT seq FROM webhook_deliveries
              WHERE status = 'pending' AND held = false AND next_attempt_at <= $1
              ORDER BY next_attempt_at, seq
              LIMIT $3
              FOR UPDATE SKIP LOCKED)
RETURNING seq, event_id, endpoint, event_type, created_at, attempts,
          upload_id, user_id, file_name, file_size, content_type, sha256, '', '', upload_status, upload_created_at,
          completed_at, upload_link_id, user_name, metadata
