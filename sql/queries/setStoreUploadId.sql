-- The store's id for a multipart upload in progress, so a clean-up after a
-- crash can abort it.
UPDATE uploads SET store_upload_id = $2 WHERE id = $1 AND status = 'pending'
