-- webhook enable URL: an endpoint disabled by a 410 gets its events again.
DELETE FROM webhook_endpoints WHERE url = $1
