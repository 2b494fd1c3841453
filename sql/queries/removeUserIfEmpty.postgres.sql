-- A user's last step (a deletion, or DELETE ?keep_files=true), in one
-- statement: the user goes with their tokens and their failed uploads that
-- left nothing in the store, only if nothing else of theirs is left.
WITH empty AS (
  SELECT $1::bigint AS id
  WHERE NOT EXISTS (SELECT 1 FROM uploads WHERE user_id = $1 AND NOT (status = 'failed' AND NOT store_leftovers))
), failed AS (
  DELETE FROM uploads USING empty WHERE uploads.user_id = empty.id
)
DELETE FROM users USING empty WHERE users.id = empty.id
