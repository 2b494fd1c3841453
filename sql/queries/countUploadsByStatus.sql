SELECT count(*) FROM uploads WHERE status = $1
