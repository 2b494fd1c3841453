-- A 2xx from the endpoint, for each delivery in the JSON array of seqs $1.
UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $2, last_error = ''
WHERE seq IN (SELECT value FROM json_each($1))
