-- A mutating call's audit record, staged inside the action's own transaction (kit::audit::begin): the action
-- and its record commit together or not at all. After the answer the writer chains the record into audit_log
-- and deletes the row in one transaction; a row whose call never got that far (the process died, or the chain
-- could not be written then) is chained by the sweeper a minute later. Rows are not part of the chain until
-- then, so they carry no hash.
CREATE TABLE audit_pending (
    id          UUID PRIMARY KEY,
    staged_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    trace_id    TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_pending_staged ON audit_pending (staged_at);
