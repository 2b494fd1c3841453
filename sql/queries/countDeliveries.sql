-- How many webhook deliveries are in a status.
SELECT count(*) FROM webhook_deliveries WHERE status = $1
