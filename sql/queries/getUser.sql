SELECT id, name, is_admin, disabled, created_at, quota_bytes, used_bytes, issuer, deleting_at IS NOT NULL FROM users WHERE id = $1
