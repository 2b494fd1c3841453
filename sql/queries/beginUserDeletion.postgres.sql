-- A user's deletion, first step, in one statement: marked and disabled
-- (their tokens stop at once), their files marked 'deleting' (as DELETE
-- /files/{id} does), their unfinished single-shot uploads failed with
-- leftovers for the janitor, their unfinished resumable ones expired (the
-- janitor ends them as any expired one). Returns the user's id and the
-- files now being deleted.
WITH target AS (
  UPDATE users SET deleting_at = COALESCE(deleting_at, $2), disabled = true WHERE name = $1 RETURNING id
), files AS (
  UPDATE uploads SET status = 'deleting' FROM target
  WHERE uploads.user_id = target.id AND uploads.status = 'complete' RETURNING 1
), unfinished AS (
  UPDATE uploads SET status = 'failed', completed_at = $2, store_leftovers = true FROM target
  WHERE uploads.user_id = target.id AND uploads.status = 'pending'
    AND NOT EXISTS (SELECT 1 FROM resumable_uploads r WHERE r.upload_id = uploads.id)
  RETURNING 1
), resumable AS (
  UPDATE resumable_uploads SET expires_at = $2 FROM target, uploads
  WHERE resumable_uploads.upload_id = uploads.id AND uploads.user_id = target.id AND uploads.status = 'pending'
  RETURNING 1
)
SELECT target.id, (SELECT count(*) FROM files) FROM target
