-- A user's last step, SQLite: their failed uploads that left nothing in the
-- store go first, if nothing else of theirs is left.
DELETE FROM uploads WHERE user_id = $1 AND status = 'failed' AND NOT store_leftovers
  AND NOT EXISTS (SELECT 1 FROM uploads WHERE user_id = $1 AND NOT (status = 'failed' AND NOT store_leftovers))
