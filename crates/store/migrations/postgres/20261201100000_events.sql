-- Lifecycle events (the transactional outbox) and their webhook delivery. No schema-qualified names: the
-- product's schema is every connection's search_path; functions pin it with SET search_path FROM CURRENT.

-- One row per change of an admin's state, written in the transaction of the change. Ids are assigned
-- under a transaction-scoped lock (trigger below), so they become visible in id order: a consumer that
-- reads "everything after N" never misses a row committed later with a smaller id.
CREATE SEQUENCE events_id_seq;

CREATE TABLE events (
    id          BIGINT NOT NULL CONSTRAINT events_pkey PRIMARY KEY,
    type        TEXT NOT NULL,
    -- users.id of the admin (for a failed provisioning: the id its saga had chosen). No foreign key:
    -- events outlive the admin.
    admin_id    UUID NOT NULL,
    email       TEXT NOT NULL,
    -- JSON object (text, identical in both databases); see the README for its fields per type.
    data        TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX events_admin_id_idx ON events (admin_id, id);

CREATE FUNCTION events_assign_id() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(TG_TABLE_SCHEMA || '.events'));
    NEW.id := nextval('events_id_seq');
    RETURN NEW;
END;
$$;

CREATE TRIGGER events_assign_id BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_assign_id();

-- NOTIFY <schema>_events with {"id","type","admin_id"}; delivered at commit, never for a rollback.
CREATE FUNCTION events_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_events',
        json_build_object('id', NEW.id, 'type', NEW.type, 'admin_id', NEW.admin_id)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_notify();

-- Webhook delivery state, one row per event, queued in the event's own transaction. A replica leases
-- a row (lease_owner, lease_until) before sending, so each attempt is made by one replica.
CREATE TABLE webhook_deliveries (
    event_id        BIGINT NOT NULL CONSTRAINT webhook_deliveries_pkey PRIMARY KEY
                        CONSTRAINT webhook_deliveries_event_id_fkey REFERENCES events (id),
    admin_id        UUID NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered')),
    attempts        INTEGER NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_owner     TEXT NULL,
    lease_until     TIMESTAMPTZ NULL,
    last_status     INTEGER NULL,
    last_error      TEXT NULL,
    delivered_at    TIMESTAMPTZ NULL
);

CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (admin_id, event_id) WHERE state = 'pending';

CREATE FUNCTION events_enqueue_delivery() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO webhook_deliveries (event_id, admin_id, state, attempts, next_attempt_at)
    VALUES (NEW.id, NEW.admin_id, 'pending', 0, NEW.occurred_at);
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_enqueue_delivery AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_enqueue_delivery();

-- The delivery log: one row per attempt (URL without query or credentials, answer or error).
CREATE TABLE webhook_attempts (
    id          BIGSERIAL NOT NULL CONSTRAINT webhook_attempts_pkey PRIMARY KEY,
    event_id    BIGINT NOT NULL,
    attempt     INTEGER NOT NULL,
    replica     TEXT NOT NULL,
    url         TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    duration_ms BIGINT NOT NULL,
    status      INTEGER NULL,
    error       TEXT NULL
);

CREATE INDEX webhook_attempts_event_id_idx ON webhook_attempts (event_id, id);

-- admin.provisioning_failed: a provisioning saga that ends undone (compensated, aborted) or stuck, once.
CREATE FUNCTION sagas_emit_provisioning_failed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO events (type, admin_id, email, data, occurred_at)
    VALUES ('admin.provisioning_failed', NEW.user_id, NEW.email_normalized,
        json_build_object(
            'admin_id', NEW.user_id, 'email', NEW.email, 'saga_id', NEW.id, 'state', NEW.state,
            'error', NEW.last_error, 'actor', NEW.actor, 'request_id', NEW.request_id)::text,
        NEW.updated_at);
    RETURN NULL;
END;
$$;

CREATE TRIGGER sagas_provisioning_failed AFTER UPDATE OF state ON sagas
    FOR EACH ROW
    WHEN (NEW.kind = 'provision' AND NEW.state IN ('compensated', 'aborted', 'stuck')
          AND OLD.state NOT IN ('compensated', 'aborted', 'stuck'))
    EXECUTE FUNCTION sagas_emit_provisioning_failed();
