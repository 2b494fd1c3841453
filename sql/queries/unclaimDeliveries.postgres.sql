-- unclaimDeliveries.sql, the array of seqs $1 read PostgreSQL's way.
UPDATE webhook_deliveries SET next_attempt_at = $2, attempts = attempts - 1
WHERE seq = ANY ($1::bigint[]) AND status = 'pending' AND attempts > 0
