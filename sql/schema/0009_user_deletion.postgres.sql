-- Deleting a user (DELETE /admin/users/{name}, `user delete`): the user is
-- marked and disabled first, their files are deleted the way DELETE
-- /files/{id} deletes them (marked 'deleting', the object, then the row;
-- the janitor finishes what a crash interrupts), and the user's row goes
-- when none of theirs is left. NULL: not being deleted.
ALTER TABLE users ADD COLUMN deleting_at timestamptz;
CREATE INDEX users_being_deleted ON users (id) WHERE deleting_at IS NOT NULL;
