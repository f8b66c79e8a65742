-- Task slips and clock changes (issue 9).

-- The 《工作任务交办单》 each dispatch carries (numbered by routing) and the unit's name, from case.dispatched,
-- so supervision prints the task slip and names the unit on every slip it issues.
ALTER TABLE tasks
    ADD COLUMN slip_no   TEXT NOT NULL DEFAULT '',
    ADD COLUMN unit_name TEXT NOT NULL DEFAULT '';
CREATE INDEX tasks_by_slip ON tasks (slip_no) WHERE slip_no <> '';
ALTER TABLE slips ADD COLUMN unit_name TEXT NOT NULL DEFAULT '';

-- A paused clock (挂账): set while the stage's clock stands still. The scheduler ignores the deadline meanwhile
-- (next_at is NULL), and resuming moves every point still ahead of the pause by the time it stood.
ALTER TABLE deadlines ADD COLUMN paused_at TIMESTAMPTZ;

-- 延期 and 挂账 requests: the unit asks with a reason, the center approves or rejects, and the row stays as the
-- history. A pause, once approved, ends when it is resumed.
CREATE TABLE clock_changes (
    id            UUID PRIMARY KEY,
    case_id       UUID NOT NULL,
    task_id       TEXT NOT NULL,
    stage         TEXT NOT NULL CHECK (stage IN ('accept', 'resolve')),
    kind          TEXT NOT NULL CHECK (kind IN ('extension', 'pause')),
    reason        TEXT NOT NULL CHECK (reason <> ''),
    -- The due time asked for (an extension only).
    new_due_at    TIMESTAMPTZ,
    -- The due time when the request was decided, and after (what the decision changed).
    due_before    TIMESTAMPTZ,
    due_after     TIMESTAMPTZ,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'resumed')),
    requested_by  TEXT NOT NULL,
    requested_at  TIMESTAMPTZ NOT NULL,
    decided_by    TEXT NOT NULL DEFAULT '',
    decided_at    TIMESTAMPTZ,
    decision_note TEXT NOT NULL DEFAULT '',
    resumed_by    TEXT NOT NULL DEFAULT '',
    resumed_at    TIMESTAMPTZ,
    CHECK ((kind = 'extension') = (new_due_at IS NOT NULL))
);
CREATE INDEX clock_changes_by_case ON clock_changes (case_id, requested_at);
-- At most one open request per task stage: a second waits for the first to be decided.
CREATE UNIQUE INDEX clock_changes_one_open ON clock_changes (task_id, stage) WHERE state = 'pending';

-- The registering center's division name, from case.registered, for the slips it issues.
ALTER TABLE cases ADD COLUMN center_name TEXT NOT NULL DEFAULT '';
