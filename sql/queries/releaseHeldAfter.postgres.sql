-- releaseHeldAfter.sql, the array of seqs $1 read PostgreSQL's way, and
-- each delivery's successor found by a probe of its own (LATERAL with a
-- LIMIT), so that no plan walks every held delivery, whatever the
-- statistics of this fast-changing table say.
UPDATE webhook_deliveries
SET held = false, next_attempt_at = COALESCE($2::timestamptz, next_attempt_at),
    attempts = attempts + (CASE WHEN $2::timestamptz IS NULL THEN 0 ELSE 1 END)
WHERE seq IN (SELECT h.seq
              FROM unnest($1::bigint[]) AS ended(seq)
              JOIN webhook_deliveries d ON d.seq = ended.seq
              CROSS JOIN LATERAL (SELECT n.seq, n.upload_id, n.endpoint FROM webhook_deliveries n
                                  WHERE n.upload_id = d.upload_id AND n.endpoint = d.endpoint
                                    AND n.status = 'pending' AND n.held = true
                                  ORDER BY n.seq
                                  LIMIT 1) AS h
              WHERE (SELECT 1 FROM webhook_endpoints x WHERE x.url = h.endpoint) IS NULL
                AND (SELECT 1 FROM webhook_deliveries p
                     WHERE p.status = 'pending' AND p.upload_id = h.upload_id
                       AND p.endpoint = h.endpoint AND p.seq < h.seq LIMIT 1) IS NULL)
RETURNING seq, event_id, endpoint, event_type, created_at, attempts,
          upload_id, user_id, file_name, file_size, content_type, sha256, '', '', upload_status, upload_created_at,
          completed_at, upload_link_id, user_name, metadata
