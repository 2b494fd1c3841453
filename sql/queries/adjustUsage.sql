-- SQLite's second step of completing, failing and deleting uploads.
UPDATE users SET used_bytes = used_bytes + $2 WHERE id = $1
