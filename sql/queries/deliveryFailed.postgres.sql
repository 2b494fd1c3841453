-- deliveryFailed.sql, with the type of $2 said (it is only compared to NULL).
UPDATE webhook_deliveries
SET status = CASE WHEN $2::timestamptz IS NULL THEN 'dead' ELSE 'pending' END,
    next_attempt_at = COALESCE($2::timestamptz, next_attempt_at), last_error = $3,
    held = EXISTS (SELECT 1 FROM webhook_endpoints x WHERE x.url = webhook_deliveries.endpoint)
WHERE seq = $1
