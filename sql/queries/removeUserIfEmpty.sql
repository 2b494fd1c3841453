-- A user's last step (a deletion, or DELETE ?keep_files=true): the user goes
-- with their tokens, only if nothing of theirs is left but failed uploads
-- that left nothing in the store. SQLite: after removeUserFailedUploads.
DELETE FROM users WHERE id = $1
  AND NOT EXISTS (SELECT 1 FROM uploads WHERE user_id = $1 AND NOT (status = 'failed' AND NOT store_leftovers))
