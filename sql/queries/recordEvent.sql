-- The webhook outbox (0012_webhooks): the event `$1` about upload `$4`, one
-- row per endpoint in the JSON array `$2`, in the transaction that made the
-- change, from the row as that change left it (for upload.deleted: as it was
-- just before). Only while the row is in the state the event reports
-- ($5 or $6; with $7, only an upload through a link): a change that did not
-- happen records nothing. Each event happens once to an upload, so its id
-- comes from the two and a second recording of it does nothing.
INSERT INTO webhook_deliveries (event_id, endpoint, event_type, upload_id, created_at, next_attempt_at, user_id,
                                user_name, file_name, file_size, content_type, sha256, upload_status,
                                upload_created_at, completed_at, upload_link_id, metadata)
SELECT 'msg_' || replace(CAST(u.id AS TEXT), '-', '') || '_' || replace($1, '.', '_'), e.value, $1, u.id, $3, $3,
       u.user_id, users.name, u.file_name, u.file_size, u.content_type, u.sha256, u.status, u.created_at,
       u.completed_at, u.upload_link_id, COALESCE(r.metadata, '')
FROM uploads u
JOIN users ON users.id = u.user_id
LEFT JOIN resumable_uploads r ON r.upload_id = u.id
CROSS JOIN json_each($2) e
WHERE u.id = $4 AND u.status IN ($5, $6) AND ($7 = 0 OR u.upload_link_id IS NOT NULL)
ON CONFLICT (event_id, endpoint) DO NOTHING
