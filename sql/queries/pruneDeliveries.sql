-- Delivered deliveries past their retention, a batch at a time.
DELETE FROM webhook_deliveries
WHERE seq IN (SELECT seq FROM webhook_deliveries WHERE status = 'delivered' AND delivered_at < $1 LIMIT $2)
