-- webhook retry ID: the event's undelivered deliveries go again now (a dead
-- one gets one more attempt: it is past webhook_max_age).
UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2,
    held = EXISTS (SELECT 1 FROM webhook_endpoints x WHERE x.url = webhook_deliveries.endpoint)
WHERE event_id = $1 AND status <> 'delivered'
