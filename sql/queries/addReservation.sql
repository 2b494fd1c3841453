UPDATE uploads SET reserved_bytes = reserved_bytes + $2 WHERE id = $1 AND status = 'pending'
