-- The reconciler (issue 11): a lease row that lets one replica at a time run the background reconciler,
-- and a byte-order index for its keyset stream of admins by Cognito username (the reconciler merges it with
-- Cognito users it sorts by bytes, whatever the database's default collation is).
CREATE TABLE leases (
    name       TEXT NOT NULL CONSTRAINT leases_pkey PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX users_cognito_username_c_idx ON users (cognito_username COLLATE "C");
