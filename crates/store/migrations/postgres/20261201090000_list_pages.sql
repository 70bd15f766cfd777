-- Keyset pages of the admin list: stored admins by (created_at, id), unfinished provisionings by
-- (started_at, id). The audit log pages by its primary key.
CREATE INDEX IF NOT EXISTS users_created_at_id_idx ON users (created_at, id);
CREATE INDEX IF NOT EXISTS sagas_unfinished_started_idx ON sagas (started_at, id)
    WHERE state NOT IN ('completed', 'compensated', 'aborted');
