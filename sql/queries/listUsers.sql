-- A page of users by name, after the last name of the previous page.
SELECT id, name, is_admin, disabled, created_at, quota_bytes, used_bytes, issuer, deleting_at IS NOT NULL FROM users WHERE name > $1 ORDER BY name LIMIT $2
