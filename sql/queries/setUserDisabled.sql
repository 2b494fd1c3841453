UPDATE users SET disabled = $2 WHERE name = $1
