-- GET /files?all=true (admins): everyone's complete uploads, newest first.
CREATE INDEX uploads_complete_by_created ON uploads (created_at DESC, id DESC) WHERE status = 'complete';
