-- Anything but a 2xx: tried again at $2, or dead when $2 is NULL.
UPDATE webhook_deliveries
SET status = CASE WHEN $2 IS NULL THEN 'dead' ELSE 'pending' END,
    next_attempt_at = COALESCE($2, next_attempt_at), claimed_until = NULL, last_error = $3
WHERE seq = $1
