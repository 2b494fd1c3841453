-- A 2xx from the endpoint, for each delivery in the array of seqs $1.
UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $2, last_error = ''
WHERE seq = ANY ($1::bigint[])
