-- GET /files: complete uploads, newest first or by name or size, with the id
-- breaking ties so that keyset pagination (after the previous page's last
-- row) never skips or repeats a row while others are added. A template:
-- db/file_listing.cpp puts in the conditions asked for (owner, name search,
-- position) and the order, numbering the parameters in that order; the
-- limit is always the last one.
SELECT id, user_id, file_name, file_size, content_type, sha256, storage_key, store_upload_id,
       status, created_at, completed_at, upload_link_id
FROM uploads
WHERE status = 'complete'{conditions}
ORDER BY {key} {direction}, id {direction}
LIMIT {limit}
