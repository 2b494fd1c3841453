-- A user's deletion, first step: marked and disabled (their tokens stop at
-- once). SQLite: then markUserUploadsDeleting and failUserUploads.
UPDATE users SET deleting_at = COALESCE(deleting_at, $2), disabled = TRUE WHERE name = $1 RETURNING id
