-- The reconciler (issue 11): a lease row that lets one replica at a time run the background reconciler.
-- The keyset stream by cognito_username uses the existing unique index (SQLite's BINARY collation is byte
-- order already).
CREATE TABLE leases (
    name       TEXT NOT NULL PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
