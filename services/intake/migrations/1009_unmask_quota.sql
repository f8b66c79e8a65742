-- The hourly unmask limit (UNMASK_PER_HOUR), counted where it cannot be raced: one row per principal, taken and
-- bumped by one statement under the row's lock before the sealed field is read. It was counted from the audit
-- trail, whose records are written after the answer, so 256 reads at once all saw the same count (issue 19).
CREATE TABLE unmask_quota (
    actor        TEXT PRIMARY KEY,
    -- The hour the count runs over starts at the first read after the last one ended.
    window_start TIMESTAMPTZ NOT NULL,
    used         INT NOT NULL
);
