-- Saga leases: a running saga holds (owner, lease_expires_at) and renews it while it works; recovery
-- takes only a saga whose lease has expired (compare-and-set on these columns).
ALTER TABLE sagas ADD COLUMN owner TEXT NULL;
ALTER TABLE sagas ADD COLUMN lease_expires_at TEXT NULL;

CREATE INDEX sagas_lease_idx ON sagas (lease_expires_at)
    WHERE state NOT IN ('completed', 'compensated', 'aborted');
