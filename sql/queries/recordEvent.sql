-- The webhook outbox (0012_webhooks): the event `$1` about upload `$4`, one
-- row per endpoint in the JSON array `$2`, in the transaction that made the
-- change, from the row as that change left it (for upload.deleted: as it was
-- just before). Only while the row is in the state the event reports
-- ($5 or $6; with $7, only an upload through a link): a change that did not
-- happen records nothing. Each event happens once to an upload, so its id
-- comes from the two and a second recording of it does nothing.
-- A delivery is held (0013_webhook_holds) while an earlier one about the
-- upload to the same endpoint is pending, or while its endpoint is disabled.
-- One that is not is claimed until $8 by the recording process, which hands
-- it to its deliverer once the transaction commits (attempts 1 in what this
-- returns); with $8 NULL it waits for a deliverer's claim.
WITH recorded AS MATERIALIZED (  -- held worked out once per row
  SELECT 'msg_' || replace(CAST(u.id AS TEXT), '-', '') || '_' || replace($1, '.', '_') AS event_id,
         e.value AS endpoint, $1 AS event_type, CAST(u.id AS TEXT) AS upload_id, $3 AS created_at,
         u.user_id, users.name AS user_name, u.file_name, u.file_size, u.content_type, u.sha256,
         u.status AS upload_status, u.created_at AS upload_created_at, u.completed_at, u.upload_link_id,
         COALESCE(r.metadata, '') AS metadata,
         (SELECT 1 FROM webhook_endpoints x WHERE x.url = e.value) IS NOT NULL
           OR (SELECT 1 FROM webhook_deliveries p
               WHERE p.status = 'pending' AND p.upload_id = CAST(u.id AS TEXT) AND p.endpoint = e.value
               LIMIT 1) IS NOT NULL AS held
  FROM uploads u
  JOIN users ON users.id = u.user_id
  LEFT JOIN resumable_uploads r ON r.upload_id = u.id
  CROSS JOIN json_each($2) e
  WHERE u.id = $4 AND u.status IN ($5, $6) AND ($7 = 0 OR u.upload_link_id IS NOT NULL)
)
INSERT INTO webhook_deliveries (event_id, endpoint, event_type, upload_id, created_at, user_id, user_name, file_name,
                                file_size, content_type, sha256, upload_status, upload_created_at, completed_at,
                                upload_link_id, metadata, held, next_attempt_at, attempts)
SELECT event_id, endpoint, event_type, upload_id, created_at, user_id, user_name, file_name, file_size, content_type,
       sha256, upload_status, upload_created_at, completed_at, upload_link_id, metadata, held,
       CASE WHEN held OR $8 IS NULL THEN created_at ELSE $8 END,
       CASE WHEN held OR $8 IS NULL THEN 0 ELSE 1 END
FROM recorded
WHERE true  -- (SQLite reads ON CONFLICT after a bare FROM as a join)
ON CONFLICT (event_id, endpoint) DO NOTHING
RETURNING seq, event_id, endpoint, event_type, created_at, attempts,
          upload_id, user_id, file_name, file_size, content_type, sha256, '', '', upload_status, upload_created_at,
          completed_at, upload_link_id, user_name, metadata
