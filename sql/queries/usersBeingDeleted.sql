-- The janitor: users whose deletion is to be finished (uses users_being_deleted).
SELECT id FROM users WHERE deleting_at IS NOT NULL ORDER BY id LIMIT $1
