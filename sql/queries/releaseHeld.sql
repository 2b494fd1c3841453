-- Held deliveries whose wait is over (0013_webhook_holds): nothing earlier
-- about their upload to their endpoint is pending, and the endpoint is not
-- disabled. releaseHeldAfter does this for the uploads of the deliveries
-- just ended; this one, for all, catches the few whose wait ended while
-- they were being recorded, and those of an endpoint enabled again. The
-- checks are scalar subqueries so that PostgreSQL probes the indexes for
-- each held row, not hashes every pending delivery (what it may do with
-- EXISTS), whatever its estimates.
UPDATE webhook_deliveries SET held = false
WHERE seq IN (SELECT h.seq FROM webhook_deliveries h
              WHERE h.status = 'pending' AND h.held = true
                AND (SELECT 1 FROM webhook_endpoints x WHERE x.url = h.endpoint) IS NULL
                AND (SELECT 1 FROM webhook_deliveries p
                     WHERE p.status = 'pending' AND p.upload_id = h.upload_id
                       AND p.endpoint = h.endpoint AND p.seq < h.seq LIMIT 1) IS NULL)
