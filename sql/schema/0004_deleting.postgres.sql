-- Crash-safe deletion: a row is marked 'deleting' before its object is
-- removed, and removed after; the janitor finishes what a crash interrupted.
-- A deleting row is invisible to the files API; its size stays in its
-- owner's usage until the row goes.
ALTER TABLE uploads DROP CONSTRAINT uploads_status_check;
ALTER TABLE uploads ADD CONSTRAINT uploads_status_check
  CHECK (status IN ('pending', 'complete', 'failed', 'deleting'));
CREATE INDEX uploads_deleting_by_created ON uploads (created_at) WHERE status = 'deleting';
