SELECT id, name, is_admin, disabled, created_at FROM users WHERE name = $1
