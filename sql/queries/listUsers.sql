SELECT id, name, is_admin, disabled, created_at FROM users ORDER BY name
