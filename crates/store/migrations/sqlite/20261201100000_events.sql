-- Lifecycle events (the transactional outbox) and their webhook delivery; same shape as the PostgreSQL
-- flavour. SQLite has one writer at a time, so AUTOINCREMENT ids become visible in id order.

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    type        TEXT NOT NULL,
    admin_id    TEXT NOT NULL,
    email       TEXT NOT NULL,
    data        TEXT NOT NULL,
    occurred_at TEXT NOT NULL
) STRICT;

CREATE INDEX events_admin_id_idx ON events (admin_id, id);

CREATE TABLE webhook_deliveries (
    event_id        INTEGER NOT NULL PRIMARY KEY REFERENCES events (id),
    admin_id        TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered')),
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL,
    lease_owner     TEXT NULL,
    lease_until     TEXT NULL,
    last_status     INTEGER NULL,
    last_error      TEXT NULL,
    delivered_at    TEXT NULL
) STRICT;

CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (admin_id, event_id) WHERE state = 'pending';

CREATE TRIGGER events_enqueue_delivery AFTER INSERT ON events
BEGIN
    INSERT INTO webhook_deliveries (event_id, admin_id, state, attempts, next_attempt_at)
    VALUES (NEW.id, NEW.admin_id, 'pending', 0, NEW.occurred_at);
END;

CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    replica     TEXT NOT NULL,
    url         TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    status      INTEGER NULL,
    error       TEXT NULL
) STRICT;

CREATE INDEX webhook_attempts_event_id_idx ON webhook_attempts (event_id, id);

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
