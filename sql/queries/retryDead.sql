-- webhook retry --dead: every dead delivery goes again now, once.
UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, claimed_until = NULL
WHERE status = 'dead'
