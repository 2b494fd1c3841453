-- A user's deletion: their unfinished single-shot uploads end, and the
-- janitor removes what they left in the store (a request still writing one
-- finds it failed when it completes, and removes what it wrote). Resumable
-- ones expire instead (expireUserUploads), so the janitor ends them as it
-- ends any expired one, tail object and all.
UPDATE uploads SET status = 'failed', completed_at = $2, store_leftovers = TRUE
WHERE user_id = $1 AND status = 'pending'
  AND NOT EXISTS (SELECT 1 FROM resumable_uploads r WHERE r.upload_id = uploads.id)
