UPDATE users SET quota_bytes = $2 WHERE name = $1
