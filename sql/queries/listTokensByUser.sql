SELECT t.id, t.user_id, u.name, t.name, t.created_at, t.expires_at, t.revoked_at
FROM api_tokens t JOIN users u ON u.id = t.user_id
WHERE t.user_id = $1
ORDER BY t.created_at
