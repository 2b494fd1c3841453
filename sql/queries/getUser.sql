SELECT id, name, is_admin, disabled, created_at, quota_bytes, used_bytes FROM users WHERE id = $1
