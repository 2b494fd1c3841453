-- The endpoints a 410 disabled, and when.
SELECT url, disabled_at, reason FROM webhook_endpoints ORDER BY url
