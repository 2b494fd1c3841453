-- Whether claimDeliveries would find anything at $1: a read, so an idle
-- deliverer's polling writes nothing.
SELECT 1 FROM webhook_deliveries
WHERE status = 'pending' AND held = false AND next_attempt_at <= $1
LIMIT 1
