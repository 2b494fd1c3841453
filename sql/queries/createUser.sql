INSERT INTO users (name, is_admin, created_at) VALUES ($1, $2, $3) RETURNING id
