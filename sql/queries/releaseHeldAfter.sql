-- releaseHeld.sql, only for the uploads of the deliveries in the JSON array
-- of seqs $1 (just delivered, or dead): their successors go next, claimed
-- until $2 by the deliverer that ended their wait (with $2 NULL, for any).
UPDATE webhook_deliveries
SET held = false, next_attempt_at = COALESCE($2, next_attempt_at),
    attempts = attempts + (CASE WHEN $2 IS NULL THEN 0 ELSE 1 END)
WHERE seq IN (SELECT h.seq FROM webhook_deliveries h
              WHERE h.upload_id IN (SELECT d.upload_id FROM webhook_deliveries d
                                    WHERE d.seq IN (SELECT value FROM json_each($1)))
                AND h.status = 'pending' AND h.held = true
                AND (SELECT 1 FROM webhook_endpoints x WHERE x.url = h.endpoint) IS NULL
                AND (SELECT 1 FROM webhook_deliveries p
                     WHERE p.status = 'pending' AND p.upload_id = h.upload_id
                       AND p.endpoint = h.endpoint AND p.seq < h.seq LIMIT 1) IS NULL)
RETURNING seq, event_id, endpoint, event_type, created_at, attempts,
          upload_id, user_id, file_name, file_size, content_type, sha256, '', '', upload_status, upload_created_at,
          completed_at, upload_link_id, user_name, metadata
