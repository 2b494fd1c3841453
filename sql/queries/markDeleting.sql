-- DELETE /files/{id}, first step: the row says 'deleting' before the object
-- goes (its size stays in its owner's usage until deleteUpload).
UPDATE uploads SET status = 'deleting' WHERE id = $1 AND status = 'complete'
