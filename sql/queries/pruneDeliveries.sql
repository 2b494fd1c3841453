-- Delivered deliveries past their retention, a batch at a time, oldest
-- first (by seq: no index of its own to keep up on every delivery).
DELETE FROM webhook_deliveries
WHERE seq IN (SELECT seq FROM webhook_deliveries WHERE status = 'delivered' AND delivered_at < $1 ORDER BY seq LIMIT $2)
