-- A 2xx from the endpoint.
UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $2, claimed_until = NULL, last_error = ''
WHERE seq = $1
