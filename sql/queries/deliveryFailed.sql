-- Anything but a 2xx: tried again at $2, or dead when $2 is NULL. Held if
-- the answer disabled the endpoint (a 410).
UPDATE webhook_deliveries
SET status = CASE WHEN $2 IS NULL THEN 'dead' ELSE 'pending' END,
    next_attempt_at = COALESCE($2, next_attempt_at), last_error = $3,
    held = EXISTS (SELECT 1 FROM webhook_endpoints x WHERE x.url = webhook_deliveries.endpoint)
WHERE seq = $1
