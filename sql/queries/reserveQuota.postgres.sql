-- Reserves bytes against the user's quota (or the default, $4) only if they
-- fit and the upload is still pending (its row locked meanwhile), and records
-- the reservation on the upload: one statement, so one transaction.
WITH pending AS (
  SELECT id FROM uploads WHERE id = $1 AND status = 'pending' FOR UPDATE
), reserved AS (
  UPDATE users SET used_bytes = used_bytes + $3
  WHERE id = $2 AND used_bytes + $3 <= COALESCE(quota_bytes, $4) AND EXISTS (SELECT 1 FROM pending)
  RETURNING id
)
UPDATE uploads SET reserved_bytes = uploads.reserved_bytes + $3
FROM reserved WHERE uploads.id = $1
