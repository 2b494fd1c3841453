-- Deliveries handed to a deliverer that had no room for them (the JSON
-- array of seqs $1): due again at $2 for any deliverer's claim, as if never
-- claimed.
UPDATE webhook_deliveries SET next_attempt_at = $2, attempts = attempts - 1
WHERE seq IN (SELECT value FROM json_each($1)) AND status = 'pending' AND attempts > 0
