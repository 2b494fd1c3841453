-- SQLite: the caller then takes a complete upload's size off its owner's usage.
DELETE FROM uploads WHERE id = $1
RETURNING user_id, CASE WHEN status IN ('complete', 'deleting') THEN file_size ELSE 0 END
