-- PATCH /admin/users/{name} (and the CLI's quota, disable and enable): each
-- field changes only when given. A user being deleted is not changed.
UPDATE users SET quota_bytes = CASE WHEN $2 THEN $3 ELSE quota_bytes END,
                 disabled = COALESCE($4, disabled),
                 is_admin = COALESCE($5, is_admin)
WHERE name = $1 AND deleting_at IS NULL
RETURNING id, name, is_admin, disabled, created_at, quota_bytes, used_bytes, issuer, deleting_at IS NOT NULL
