-- GET /files?sort=name|size for one owner: walked in index order, the name
-- lowered, as the listing compares it. (Newest first uses
-- uploads_by_user_created.)
CREATE INDEX uploads_complete_by_user_name ON uploads (user_id, lower(file_name), id) WHERE status = 'complete';
CREATE INDEX uploads_complete_by_user_size ON uploads (user_id, file_size, id) WHERE status = 'complete';
