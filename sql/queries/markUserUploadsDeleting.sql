-- A user's deletion: their files marked 'deleting', as DELETE /files/{id} does.
UPDATE uploads SET status = 'deleting' WHERE user_id = $1 AND status = 'complete'
