WITH gone AS (
  DELETE FROM uploads WHERE id = $1
  RETURNING user_id, CASE WHEN status IN ('complete', 'deleting') THEN file_size ELSE 0 END AS held
)
UPDATE users SET used_bytes = users.used_bytes - gone.held
FROM gone WHERE users.id = gone.user_id
