-- SQLite, after failUpload: a failed upload gives its link's file and bytes back.
UPDATE upload_links SET files_used = files_used - 1, bytes_used = bytes_used - $2 WHERE id = $1
