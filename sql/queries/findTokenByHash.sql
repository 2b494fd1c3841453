-- The token's columns as listTokens gives them, then its user's as
-- listUsers does: the stores decode both with the helpers those use.
SELECT t.id, t.user_id, u.name, t.name, t.created_at, t.expires_at, t.revoked_at,
       u.id, u.name, u.is_admin, u.disabled, u.created_at, u.quota_bytes, u.used_bytes, u.issuer, u.deleting_at IS NOT NULL
FROM api_tokens t JOIN users u ON u.id = t.user_id
WHERE t.token_hash = $1
