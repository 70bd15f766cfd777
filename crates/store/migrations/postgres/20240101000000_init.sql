-- admin-provisioner schema, PostgreSQL flavour. Same logical shape as migrations/sqlite.
-- Constraint names matter: the adapter maps unique violations to domain errors by name.

-- One person known to the application, linked to one Cognito user.
CREATE TABLE users (
    id               UUID NOT NULL CONSTRAINT users_pkey PRIMARY KEY,
    email            TEXT NOT NULL,
    -- Uniqueness is case-insensitive because the adapter's callers store the lower-cased address here.
    email_normalized TEXT NOT NULL CONSTRAINT users_email_normalized_key UNIQUE,
    cognito_username TEXT NOT NULL CONSTRAINT users_cognito_username_key UNIQUE,
    cognito_sub      TEXT NOT NULL CONSTRAINT users_cognito_sub_key UNIQUE,
    status           TEXT NOT NULL CONSTRAINT users_status_check CHECK (status IN ('invited', 'active')),
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

-- What makes a user an admin; 1:1 with users. Delete it before its user (the FK forbids the reverse).
CREATE TABLE admin_info (
    user_id             UUID NOT NULL CONSTRAINT admin_info_pkey PRIMARY KEY
                            CONSTRAINT admin_info_user_id_fkey REFERENCES users (id),
    invited_by          UUID NULL
                            CONSTRAINT admin_info_invited_by_fkey REFERENCES users (id) ON DELETE SET NULL,
    invited_at          TIMESTAMPTZ NOT NULL,
    invite_expires_at   TIMESTAMPTZ NOT NULL,
    invites_sent        INTEGER NOT NULL CHECK (invites_sent >= 0),
    last_invite_sent_at TIMESTAMPTZ NOT NULL,
    invite_delivered    BOOLEAN NOT NULL,
    accepted_at         TIMESTAMPTZ NULL
);

CREATE INDEX admin_info_invited_by_idx ON admin_info (invited_by);

-- The saga log. No foreign key to users: a saga is written before its user and outlives it.
CREATE TABLE sagas (
    id                       UUID NOT NULL CONSTRAINT sagas_pkey PRIMARY KEY,
    kind                     TEXT NOT NULL CHECK (kind IN ('provision', 'remove')),
    actor                    TEXT NOT NULL,
    email                    TEXT NOT NULL,
    email_normalized         TEXT NOT NULL,
    user_id                  UUID NOT NULL,
    cognito_username         TEXT NOT NULL,
    cognito_sub              TEXT NULL,
    identity_created_by_saga BOOLEAN NOT NULL,
    invite_delivered         BOOLEAN NOT NULL,
    state                    TEXT NOT NULL CHECK (state IN (
                                 'started', 'identity_creating', 'identity_created', 'completed',
                                 'compensating', 'compensated', 'aborted', 'identity_pending_delete',
                                 'stuck')),
    attempts                 INTEGER NOT NULL,
    last_error               TEXT NULL,
    request_id               TEXT NULL,
    started_at               TIMESTAMPTZ NOT NULL,
    updated_at               TIMESTAMPTZ NOT NULL
);

-- The concurrency guard: at most one unfinished saga per e-mail.
CREATE UNIQUE INDEX sagas_unfinished_email_key ON sagas (email_normalized)
    WHERE state NOT IN ('completed', 'compensated', 'aborted');

CREATE INDEX sagas_started_at_idx ON sagas (started_at);

-- The audit log: append-only, enforced by the triggers below.
CREATE TABLE audit_log (
    id         BIGSERIAL NOT NULL CONSTRAINT audit_log_pkey PRIMARY KEY,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    request_id TEXT NULL,
    at         TIMESTAMPTZ NOT NULL
);

CREATE FUNCTION audit_log_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP;
END;
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_reject_change();

-- Idempotency keys: the first request with a key claims it; its response is stored for replays.
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NULL,
    body         TEXT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key),
    CHECK ((status IS NULL) = (body IS NULL))
);
