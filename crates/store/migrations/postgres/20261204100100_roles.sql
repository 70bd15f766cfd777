-- Roles (issue 21): every admin has a role, `owner`, `admin` or `viewer` (the permission table is in the
-- core, `provisioner/policy.rs`). An upgrade makes the earliest active admin (enabled, first login done,
-- oldest by creation) an `owner` and every other admin an `admin`, so an existing deployment keeps one
-- admin who may do everything. Same logical shape as migrations/sqlite.
ALTER TABLE admin_info ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'
    CONSTRAINT admin_info_role_check CHECK (role IN ('owner', 'admin', 'viewer'));

UPDATE admin_info SET role = 'owner'
WHERE user_id = (
    SELECT u.id FROM users u JOIN admin_info a ON a.user_id = u.id
    WHERE u.status = 'active' AND u.disabled_at IS NULL
    ORDER BY u.created_at, u.id
    LIMIT 1);

-- The saga log learns the role change (a saga kind of its own) and the role a saga gives: the role of
-- a provisioning's new admin, the new role of a role change. NULL for the other kinds (and for a
-- provisioning logged before this release: `admin`).
ALTER TABLE sagas DROP CONSTRAINT sagas_kind_check;
ALTER TABLE sagas ADD CONSTRAINT sagas_kind_check
    CHECK (kind IN ('provision', 'remove', 'disable', 'enable', 'change_role'));
ALTER TABLE sagas ADD COLUMN role TEXT NULL
    CONSTRAINT sagas_role_check CHECK (role IS NULL OR role IN ('owner', 'admin', 'viewer'));
