UPDATE uploads
SET status = 'complete', file_size = $2, content_type = $3, sha256 = $4, completed_at = $5
WHERE id = $1 AND status = 'pending'
