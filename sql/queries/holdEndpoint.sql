-- An endpoint just disabled (disableEndpoint): its pending deliveries are
-- held until it is enabled again (releaseHeld).
UPDATE webhook_deliveries SET held = true WHERE endpoint = $1 AND status = 'pending' AND held = false
