-- 0013_webhook_holds.postgres.sql in SQLite's types (held is 0 or 1; SQLite reads
-- false and true as 0 and 1, so the queries are the same).
-- Claims that stay cheap with any backlog. A claim now moves the delivery's
-- next_attempt_at to the end of its lease (claimed_until is no longer used: a
-- claimed delivery is simply not due), and a delivery that must wait is held: behind
-- an earlier pending delivery about the same upload to the same endpoint (a
-- receiver never hears of a deletion before the completion), or for its
-- endpoint to be enabled again. A claim is then a walk of the due index in
-- order, with nothing to check per row; the delivery, failure or enabling
-- that ends a wait releases what it held.
ALTER TABLE webhook_deliveries ADD COLUMN held INTEGER NOT NULL DEFAULT 0 CHECK (held IN (0, 1));
UPDATE webhook_deliveries SET next_attempt_at = claimed_until
WHERE status = 'pending' AND claimed_until > next_attempt_at;
UPDATE webhook_deliveries SET held = true
WHERE status = 'pending'
  AND (EXISTS (SELECT 1 FROM webhook_endpoints x WHERE x.url = webhook_deliveries.endpoint)
       OR EXISTS (SELECT 1 FROM webhook_deliveries p
                  WHERE p.status = 'pending' AND p.upload_id = webhook_deliveries.upload_id
                    AND p.endpoint = webhook_deliveries.endpoint AND p.seq < webhook_deliveries.seq));
-- claimed_until is no longer read or written, but stays: instances of an
-- earlier build still use it during a rolling upgrade.
DROP INDEX webhook_deliveries_due;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, seq) WHERE status = 'pending' AND held = false;
CREATE INDEX webhook_deliveries_held ON webhook_deliveries (upload_id, endpoint, seq) WHERE status = 'pending' AND held = true;
