-- A user's deletion: their unfinished resumable uploads expire now; the
-- janitor ends them (Uploads::end_expired) once no request writes them.
UPDATE resumable_uploads SET expires_at = $2
WHERE upload_id IN (SELECT id FROM uploads WHERE user_id = $1 AND status = 'pending')
