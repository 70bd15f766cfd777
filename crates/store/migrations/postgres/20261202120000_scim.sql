-- SCIM 2.0 (issue 12): the `disabled` lifecycle state, the SCIM externalId, SCIM bearer tokens, and the
-- disable/enable sagas. Same logical shape as migrations/sqlite.

-- `disabled_at` set = the admin is disabled (status `disabled` in the API): refused at login and on every
-- API call. `status` keeps what the admin was before (`invited` or `active`), which enabling restores.
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMPTZ NULL;
-- The identity provider's own id for the person (SCIM `externalId`), as the SCIM client sent it.
ALTER TABLE users ADD COLUMN external_id TEXT NULL;
CREATE INDEX users_external_id_idx ON users (external_id);
-- The SCIM attributes the product keeps as the identity provider sent them (a JSON object with `userName`
-- and `emails`); the admin's e-mail (the Cognito username) is fixed when the admin is created.
ALTER TABLE users ADD COLUMN scim_profile TEXT NULL;

-- SCIM clients' bearer tokens. Only the SHA-256 of a token is stored; the token is shown once.
CREATE TABLE scim_tokens (
    name         TEXT NOT NULL CONSTRAINT scim_tokens_pkey PRIMARY KEY,
    token_sha256 TEXT NOT NULL CONSTRAINT scim_tokens_token_sha256_key UNIQUE,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ NULL,
    last_used_at TIMESTAMPTZ NULL
);

-- The saga log learns two kinds and one state: a disable/enable saga is `identity_updating` once its
-- first side effect happened (the database change for a disable, the Cognito call for an enable).
ALTER TABLE sagas DROP CONSTRAINT sagas_kind_check;
ALTER TABLE sagas ADD CONSTRAINT sagas_kind_check CHECK (kind IN ('provision', 'remove', 'disable', 'enable'));
ALTER TABLE sagas DROP CONSTRAINT sagas_state_check;
ALTER TABLE sagas ADD CONSTRAINT sagas_state_check CHECK (state IN (
    'started', 'identity_creating', 'identity_created', 'completed', 'compensating', 'compensated', 'aborted',
    'identity_pending_delete', 'stuck', 'identity_updating'));
