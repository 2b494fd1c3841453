-- DELETE /upload-links/{id}: only the owner's own, only once.
UPDATE upload_links SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
