-- webhook retry --dead: every dead delivery goes again now, once.
UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1,
    held = EXISTS (SELECT 1 FROM webhook_endpoints x WHERE x.url = webhook_deliveries.endpoint)
WHERE status = 'dead'
