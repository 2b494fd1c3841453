-- A user's deletion fails their unfinished single-shot uploads in bulk
-- (failUserUploads, or the CTE in beginUserDeletion): upload.failed for each
-- of them, in the same transaction, for the endpoints in the JSON array $1.
-- They are the user $2's uploads failed at $3, the deletion's moment; an
-- event already recorded for one is not recorded again.
INSERT INTO webhook_deliveries (event_id, endpoint, event_type, upload_id, created_at, next_attempt_at, user_id,
                                user_name, file_name, file_size, content_type, sha256, upload_status,
                                upload_created_at, completed_at, upload_link_id, metadata, held)
SELECT 'msg_' || replace(CAST(u.id AS TEXT), '-', '') || '_upload_failed', e.value, 'upload.failed', u.id, $3, $3,
       u.user_id, users.name, u.file_name, u.file_size, u.content_type, u.sha256, u.status, u.created_at,
       u.completed_at, u.upload_link_id, '',
       (SELECT 1 FROM webhook_endpoints x WHERE x.url = e.value) IS NOT NULL
        OR (SELECT 1 FROM webhook_deliveries p
            WHERE p.status = 'pending' AND p.upload_id = CAST(u.id AS TEXT) AND p.endpoint = e.value LIMIT 1) IS NOT NULL
FROM uploads u
JOIN users ON users.id = u.user_id
CROSS JOIN json_each($1) e
WHERE u.user_id = $2 AND u.status = 'failed' AND u.completed_at = $3
ON CONFLICT (event_id, endpoint) DO NOTHING
