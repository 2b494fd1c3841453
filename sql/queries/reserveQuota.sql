-- Reserves bytes against the user's quota (or the default, $3) only if they
-- fit: one conditional UPDATE, so concurrent uploads cannot overshoot together.
-- SQLite: the caller then records the reservation on the upload (addReservation).
UPDATE users SET used_bytes = used_bytes + $2
WHERE id = $1 AND used_bytes + $2 <= COALESCE(quota_bytes, $3)
