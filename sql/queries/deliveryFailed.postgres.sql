-- deliveryFailed.sql, with the type of $2 said (it is only compared to NULL).
UPDATE webhook_deliveries
SET status = CASE WHEN $2::timestamptz IS NULL THEN 'dead' ELSE 'pending' END,
    next_attempt_at = COALESCE($2::timestamptz, next_attempt_at), claimed_until = NULL, last_error = $3
WHERE seq = $1
