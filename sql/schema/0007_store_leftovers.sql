-- A failed upload whose store leftovers (an S3 multipart upload and its
-- parts) could not be removed when it failed, because the store could not
-- be reached: the janitor removes them once it can, then clears the flag.
-- Without it, they were only retried in the failing process's memory.
ALTER TABLE uploads ADD COLUMN store_leftovers boolean NOT NULL DEFAULT false;
CREATE INDEX uploads_with_store_leftovers ON uploads (completed_at) WHERE store_leftovers;
