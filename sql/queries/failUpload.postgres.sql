-- A pending upload fails: its quota reservation goes back to its owner, and
-- the file and bytes it held of a link (if it came through one) to the link.
WITH failed AS (
  UPDATE uploads SET status = 'failed', completed_at = $2, store_leftovers = $3 WHERE id = $1 AND status = 'pending'
  RETURNING user_id, reserved_bytes, upload_link_id, link_bytes
), link AS (
  UPDATE upload_links SET files_used = upload_links.files_used - 1, bytes_used = upload_links.bytes_used - failed.link_bytes
  FROM failed WHERE upload_links.id = failed.upload_link_id
)
UPDATE users SET used_bytes = users.used_bytes - failed.reserved_bytes
FROM failed WHERE users.id = failed.user_id
