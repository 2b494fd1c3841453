-- webhook list / GET /admin/webhooks: deliveries newest first, in one status
-- ($1; '' for any), before seq $2 (0 for the first page), at most $3.
SELECT seq, event_id, endpoint, event_type, upload_id, status, attempts, created_at, next_attempt_at, last_error,
       delivered_at
FROM webhook_deliveries
WHERE ($1 = '' OR status = $1) AND ($2 = 0 OR seq < $2)
ORDER BY seq DESC
LIMIT $3
