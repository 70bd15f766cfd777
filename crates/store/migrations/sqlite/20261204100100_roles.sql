-- Roles (issue 21): every admin has a role, `owner`, `admin` or `viewer` (the permission table is in the
-- core, `provisioner/policy.rs`). An upgrade makes the earliest active admin (enabled, first login done,
-- oldest by creation) an `owner` and every other admin an `admin`, so an existing deployment keeps one
-- admin who may do everything. Same logical shape as migrations/postgres.
ALTER TABLE admin_info ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'
    CHECK (role IN ('owner', 'admin', 'viewer'));

UPDATE admin_info SET role = 'owner'
WHERE user_id = (
    SELECT u.id FROM users u JOIN admin_info a ON a.user_id = u.id
    WHERE u.status = 'active' AND u.disabled_at IS NULL
    ORDER BY u.created_at, u.id
    LIMIT 1);

-- The saga log learns the role change (a saga kind of its own) and the role a saga gives: the role of a
-- provisioning's new admin, the new role of a role change. NULL for the other kinds (and for a
-- provisioning logged before this release: `admin`). SQLite cannot alter a CHECK constraint, so the
-- table is rebuilt with the same columns, indexes and triggers; nothing references it by foreign key.
CREATE TABLE sagas_new (
    id                       TEXT NOT NULL PRIMARY KEY,
    kind                     TEXT NOT NULL CHECK (kind IN ('provision', 'remove', 'disable', 'enable', 'change_role')),
    actor                    TEXT NOT NULL,
    email                    TEXT NOT NULL,
    email_normalized         TEXT NOT NULL,
    user_id                  TEXT NOT NULL,
    cognito_username         TEXT NOT NULL,
    cognito_sub              TEXT NULL,
    identity_created_by_saga INTEGER NOT NULL CHECK (identity_created_by_saga IN (0, 1)),
    invite_delivered         INTEGER NOT NULL CHECK (invite_delivered IN (0, 1)),
    state                    TEXT NOT NULL CHECK (state IN (
                                 'started', 'identity_creating', 'identity_created', 'completed',
                                 'compensating', 'compensated', 'aborted', 'identity_pending_delete',
                                 'stuck', 'identity_updating')),
    attempts                 INTEGER NOT NULL,
    last_error               TEXT NULL,
    request_id               TEXT NULL,
    started_at               TEXT NOT NULL,
    updated_at               TEXT NOT NULL,
    owner                    TEXT NULL,
    lease_expires_at         TEXT NULL,
    scim_user_name           TEXT NULL,
    scim_external_id         TEXT NULL,
    scim_profile             TEXT NULL,
    role                     TEXT NULL CHECK (role IS NULL OR role IN ('owner', 'admin', 'viewer'))
) STRICT;

INSERT INTO sagas_new (id, kind, actor, email, email_normalized, user_id, cognito_username, cognito_sub,
    identity_created_by_saga, invite_delivered, state, attempts, last_error, request_id, started_at,
    updated_at, owner, lease_expires_at, scim_user_name, scim_external_id, scim_profile)
SELECT id, kind, actor, email, email_normalized, user_id, cognito_username, cognito_sub,
    identity_created_by_saga, invite_delivered, state, attempts, last_error, request_id, started_at,
    updated_at, owner, lease_expires_at, scim_user_name, scim_external_id, scim_profile
FROM sagas;

DROP TABLE sagas;
ALTER TABLE sagas_new RENAME TO sagas;

CREATE UNIQUE INDEX sagas_unfinished_email_key ON sagas (email_normalized)
    WHERE state NOT IN ('completed', 'compensated', 'aborted');
CREATE INDEX sagas_started_at_idx ON sagas (started_at);
CREATE INDEX sagas_lease_idx ON sagas (lease_expires_at)
    WHERE state NOT IN ('completed', 'compensated', 'aborted');
CREATE INDEX sagas_unfinished_started_idx ON sagas (started_at, id)
    WHERE state NOT IN ('completed', 'compensated', 'aborted');
CREATE UNIQUE INDEX sagas_unfinished_scim_user_name_key ON sagas (scim_user_name)
    WHERE state NOT IN ('completed', 'compensated', 'aborted') AND scim_user_name IS NOT NULL;

CREATE TRIGGER sagas_provisioning_failed AFTER UPDATE OF state ON sagas
    WHEN NEW.kind = 'provision' AND NEW.state IN ('compensated', 'aborted', 'stuck')
         AND OLD.state NOT IN ('compensated', 'aborted', 'stuck')
BEGIN
    INSERT INTO events (type, admin_id, email, data, occurred_at)
    VALUES ('admin.provisioning_failed', NEW.user_id, NEW.email_normalized,
        json_object(
            'admin_id', NEW.user_id, 'email', NEW.email, 'saga_id', NEW.id, 'state', NEW.state,
            'error', NEW.last_error, 'actor', NEW.actor, 'request_id', NEW.request_id),
        NEW.updated_at);
END;
