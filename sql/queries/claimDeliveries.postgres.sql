-- claimDeliveries.sql, with the candidates locked as they are picked and
-- those another instance is claiming right now skipped, not waited for.
UPDATE webhook_deliveries SET claimed_until = $2, attempts = attempts + 1
WHERE seq IN (
  SELECT c.seq FROM webhook_deliveries c
  WHERE c.seq IN (SELECT seq FROM webhook_deliveries
                  WHERE status = 'pending' AND next_attempt_at <= $1
                  ORDER BY next_attempt_at, seq
                  LIMIT 256)
    AND (c.claimed_until IS NULL OR c.claimed_until <= $1)
    AND NOT EXISTS (SELECT 1 FROM webhook_endpoints x WHERE x.url = c.endpoint)
    AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
                    WHERE p.status = 'pending' AND p.upload_id = c.upload_id AND p.endpoint = c.endpoint AND p.seq < c.seq)
  ORDER BY c.next_attempt_at, c.seq
  LIMIT $3
  FOR UPDATE SKIP LOCKED
)
RETURNING seq, event_id, endpoint, event_type, created_at, attempts,
          upload_id, user_id, file_name, file_size, content_type, sha256, '', '', upload_status, upload_created_at,
          completed_at, upload_link_id, user_name, metadata
