-- Credential resets by another admin (issue 20): the password-reset and MFA-reset sagas are kinds of
-- their own in the saga log. SQLite cannot alter a CHECK constraint, so the table is rebuilt with the
-- same columns, indexes and triggers (as in the roles migration); nothing references it by foreign key.
-- Same logical shape as migrations/postgres.
CREATE TABLE sagas_new (
    id                       TEXT NOT NULL PRIMARY KEY,
    kind                     TEXT NOT NULL CHECK (kind IN ('provision', 'remove', 'disable', 'enable', 'change_role',
                                                        'reset_password', 'reset_mfa')),
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
    updated_at, owner, lease_expires_at, scim_user_name, scim_external_id, scim_profile, role)
SELECT id, kind, actor, email, email_normalized, user_id, cognito_username, cognito_sub,
    identity_created_by_saga, invite_delivered, state, attempts, last_error, request_id, started_at,
    updated_at, owner, lease_expires_at, scim_user_name, scim_external_id, scim_profile, role
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
