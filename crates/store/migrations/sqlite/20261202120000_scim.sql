-- SCIM 2.0 (issue 12): the `disabled` lifecycle state, the SCIM externalId, SCIM bearer tokens, and the
-- disable/enable sagas. Same logical shape as migrations/postgres.

-- `disabled_at` set = the admin is disabled (status `disabled` in the API): refused at login and on every
-- API call. `status` keeps what the admin was before (`invited` or `active`), which enabling restores.
ALTER TABLE users ADD COLUMN disabled_at TEXT NULL;
-- The identity provider's own id for the person (SCIM `externalId`), as the SCIM client sent it.
ALTER TABLE users ADD COLUMN external_id TEXT NULL;
CREATE INDEX users_external_id_idx ON users (external_id);
-- The SCIM attributes the product keeps as the identity provider sent them (a JSON object with `userName`
-- and `emails`); the admin's e-mail (the Cognito username) is fixed when the admin is created.
ALTER TABLE users ADD COLUMN scim_profile TEXT NULL;

-- SCIM clients' bearer tokens. Only the SHA-256 of a token is stored; the token is shown once.
CREATE TABLE scim_tokens (
    name         TEXT NOT NULL PRIMARY KEY,
    token_sha256 TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT NULL,
    last_used_at TEXT NULL
) STRICT;
CREATE UNIQUE INDEX scim_tokens_token_sha256_key ON scim_tokens (token_sha256);

-- The saga log learns two kinds and one state (`identity_updating`: a disable/enable saga's first side
-- effect happened). SQLite cannot alter a CHECK constraint, so the table is rebuilt with the same
-- columns, indexes and trigger; nothing references it by foreign key.
CREATE TABLE sagas_new (
    id                       TEXT NOT NULL PRIMARY KEY,
    kind                     TEXT NOT NULL CHECK (kind IN ('provision', 'remove', 'disable', 'enable')),
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
    lease_expires_at         TEXT NULL
) STRICT;

INSERT INTO sagas_new (id, kind, actor, email, email_normalized, user_id, cognito_username, cognito_sub,
    identity_created_by_saga, invite_delivered, state, attempts, last_error, request_id, started_at,
    updated_at, owner, lease_expires_at)
SELECT id, kind, actor, email, email_normalized, user_id, cognito_username, cognito_sub,
    identity_created_by_saga, invite_delivered, state, attempts, last_error, request_id, started_at,
    updated_at, owner, lease_expires_at
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
