-- admin-provisioner schema, SQLite flavour.
--
-- Same logical shape as migrations/postgres: ids are UUIDs stored as hyphenated lower-case TEXT,
-- timestamps are UTC RFC 3339 TEXT with exactly six fractional digits ("2024-05-01T12:00:00.123456Z"),
-- so that text order is time order. Booleans are INTEGER 0/1. Tables are STRICT so a wrongly typed
-- value is rejected instead of silently stored. Foreign keys are enforced by the connection
-- (PRAGMA foreign_keys=ON, set by the adapter on every connection).

-- One person known to the application, linked to one Cognito user.
CREATE TABLE users (
    id               TEXT NOT NULL PRIMARY KEY,
    email            TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    cognito_username TEXT NOT NULL,
    cognito_sub      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('invited', 'active')),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
) STRICT;

-- Uniqueness is case-insensitive because the adapter's callers store the lower-cased address here.
CREATE UNIQUE INDEX users_email_normalized_key ON users (email_normalized);
CREATE UNIQUE INDEX users_cognito_username_key ON users (cognito_username);
CREATE UNIQUE INDEX users_cognito_sub_key ON users (cognito_sub);

-- What makes a user an admin; 1:1 with users. Delete it before its user (the FK forbids the reverse).
CREATE TABLE admin_info (
    user_id             TEXT NOT NULL PRIMARY KEY REFERENCES users (id),
    invited_by          TEXT NULL REFERENCES users (id) ON DELETE SET NULL,
    invited_at          TEXT NOT NULL,
    invite_expires_at   TEXT NOT NULL,
    invites_sent        INTEGER NOT NULL CHECK (invites_sent >= 0),
    last_invite_sent_at TEXT NOT NULL,
    invite_delivered    INTEGER NOT NULL CHECK (invite_delivered IN (0, 1)),
    accepted_at         TEXT NULL
) STRICT;

CREATE INDEX admin_info_invited_by_idx ON admin_info (invited_by);

-- The saga log. No foreign key to users: a saga is written before its user and outlives it.
CREATE TABLE sagas (
    id                       TEXT NOT NULL PRIMARY KEY,
    kind                     TEXT NOT NULL CHECK (kind IN ('provision', 'remove')),
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
                                 'stuck')),
    attempts                 INTEGER NOT NULL,
    last_error               TEXT NULL,
    request_id               TEXT NULL,
    started_at               TEXT NOT NULL,
    updated_at               TEXT NOT NULL
) STRICT;

-- The concurrency guard: at most one unfinished saga per e-mail.
CREATE UNIQUE INDEX sagas_unfinished_email_key ON sagas (email_normalized)
    WHERE state NOT IN ('completed', 'compensated', 'aborted');

CREATE INDEX sagas_started_at_idx ON sagas (started_at);

-- The audit log: append-only, enforced by the triggers below.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    request_id TEXT NULL,
    at         TEXT NOT NULL
) STRICT;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE is not allowed');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE is not allowed');
END;

-- Idempotency keys: the first request with a key claims it; its response is stored for replays.
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NULL,
    body         TEXT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (scope, key),
    CHECK ((status IS NULL) = (body IS NULL))
) STRICT;
