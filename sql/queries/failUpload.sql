UPDATE uploads SET status = 'failed', completed_at = $2 WHERE id = $1 AND status = 'pending'
