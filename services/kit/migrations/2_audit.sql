-- The audit trail (全过程留痕): who did what to which object, when, from where and with what outcome.
-- Each record is chained to the one before by an HMAC-SM3 over the previous hash and every field, computed by
-- the writer (kit::audit), so a changed, removed or inserted record breaks the chain even for an insider who
-- can bypass the triggers below. The triggers make the table append-only for the application's role.

CREATE TABLE audit_log (
    -- Assigned by the writer under the audit_head lock: contiguous 1, 2, 3 …, so a missing record is a gap.
    seq         BIGINT PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    trace_id    TEXT NOT NULL,
    -- TEXT, not JSONB: JSONB would re-order keys and re-space the value, and the hash covers the exact bytes.
    detail      TEXT NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);

-- The end of the chain, one row. Appends lock it FOR UPDATE, which serialises writers across replicas.
CREATE TABLE audit_head (
    one  BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
-- The genesis link: the first record's prev_hash is 32 zero bytes.
INSERT INTO audit_head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();

-- Deletion is the retention purge only: records kept at least 180 days (网络安全法 §21 requires six months),
-- and only the oldest ones, so what remains is one unbroken chain whose first prev_hash is the anchor.
-- A statement trigger sees the whole purge at once, whatever order its rows were deleted in.
-- search_path is pinned to the service's schema, so the check finds audit_log whoever deletes.
CREATE FUNCTION audit_purge_check() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM purged WHERE at > now() - interval '180 days') THEN
        RAISE EXCEPTION 'audit records are kept 180 days: delete refused'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- The newest record stays, so the head always has a record to point at.
    IF EXISTS (SELECT 1 FROM purged JOIN audit_head USING (seq)) THEN
        RAISE EXCEPTION 'the newest audit record is never purged: delete refused'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM audit_log WHERE seq < (SELECT max(seq) FROM purged)) THEN
        RAISE EXCEPTION 'audit purge must remove the oldest records first: delete refused'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_log_purge_only AFTER DELETE ON audit_log
    REFERENCING OLD TABLE AS purged
    FOR EACH STATEMENT EXECUTE FUNCTION audit_purge_check();
