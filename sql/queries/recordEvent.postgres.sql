-- PostgreSQL: the same as recordEvent.sql, the endpoints read as JSON its way.
WITH recorded AS MATERIALIZED (  -- held worked out once per row
  SELECT 'msg_' || replace(CAST(u.id AS TEXT), '-', '') || '_' || replace($1, '.', '_') AS event_id,
         e.value AS endpoint, $1::text AS event_type, u.id AS upload_id, $3::timestamptz AS created_at,
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
  CROSS JOIN json_array_elements_text($2::json) AS e(value)
  WHERE u.id = $4 AND u.status IN ($5, $6) AND (NOT $7 OR u.upload_link_id IS NOT NULL)
)
INSERT INTO webhook_deliveries (event_id, endpoint, event_type, upload_id, created_at, user_id, user_name, file_name,
                                file_size, content_type, sha256, upload_status, upload_created_at, completed_at,
                                upload_link_id, metadata, held, next_attempt_at, attempts)
SELECT event_id, endpoint, event_type, upload_id, created_at, user_id, user_name, file_name, file_size, content_type,
       sha256, upload_status, upload_created_at, completed_at, upload_link_id, metadata, held,
       CASE WHEN held OR $8::timestamptz IS NULL THEN created_at ELSE $8::timestamptz END,
       CASE WHEN held OR $8::timestamptz IS NULL THEN 0 ELSE 1 END
FROM recorded
ON CONFLICT (event_id, endpoint) DO NOTHING
RETURNING seq, event_id, endpoint, event_type, created_at, attempts,
          upload_id, user_id, file_name, file_size, content_type, sha256, '', '', upload_status, upload_created_at,
          completed_at, upload_link_id, user_name, metadata
