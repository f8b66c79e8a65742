-- A principal's recent records of one action, newest first: what the unmask rate limit counts, and what an
-- auditor filtering by person reads.
CREATE INDEX audit_log_by_actor ON audit_log (actor, action, at DESC);
