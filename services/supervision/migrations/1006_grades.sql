-- Graded supervision (督办, issue 9): a reminder (临期提醒) before the due time, a yellow card (黄牌) at it and a
-- red card (红牌) after, each a numbered 《督办提示单》 the unit must acknowledge.

ALTER TABLE deadlines
    -- When the reminder and the red card fall due, on the deadline's own clock (the yellow card is due_at).
    ADD COLUMN remind_at  TIMESTAMPTZ,
    ADD COLUMN red_at     TIMESTAMPTZ,
    -- The next grade to issue and when: reminder, then yellow, then red; '' once the red card is issued or the
    -- stage is done, paused or cancelled. The scheduler reads this alone.
    ADD COLUMN next_grade TEXT NOT NULL DEFAULT '' CHECK (next_grade IN ('', 'reminder', 'yellow', 'red')),
    ADD COLUMN next_at    TIMESTAMPTZ,
    -- When the stage was done (签收 or 办结), on time or late: what the on-time rates count.
    ADD COLUMN done_at    TIMESTAMPTZ;

-- Deadlines pending before this migration get their yellow card at the due time, as before, and no other.
UPDATE deadlines SET next_grade = 'yellow', next_at = due_at WHERE state = 'pending';
CREATE INDEX deadlines_next ON deadlines (next_at) WHERE next_grade <> '';

-- The registering center, from case.registered: it issues the case's slips.
ALTER TABLE cases ADD COLUMN center_code TEXT NOT NULL DEFAULT '';

-- Slip numbers per issuing center and year: 532901-督-2025-00017.
CREATE TABLE slip_numbers (
    center_prefix TEXT NOT NULL,
    year          INT  NOT NULL,
    last_seq      INT  NOT NULL,
    PRIMARY KEY (center_prefix, year)
);

-- Every 《督办提示单》 issued. One per task, stage and grade, whatever the restarts and replicas.
CREATE TABLE slips (
    id                UUID PRIMARY KEY,
    number            TEXT NOT NULL UNIQUE,
    case_id           UUID NOT NULL,
    task_id           TEXT NOT NULL,
    stage             TEXT NOT NULL,
    grade             TEXT NOT NULL CHECK (grade IN ('reminder', 'yellow', 'red')),
    -- The unit it is addressed to, the issuing center, and the center it is copied to.
    unit_code         TEXT NOT NULL,
    center_code       TEXT NOT NULL,
    copy_to           TEXT NOT NULL DEFAULT '',
    case_no           TEXT NOT NULL DEFAULT '',
    category_code     TEXT NOT NULL DEFAULT '',
    due_at            TIMESTAMPTZ NOT NULL,
    issued_at         TIMESTAMPTZ NOT NULL,
    verification_code TEXT NOT NULL,
    acknowledged_at   TIMESTAMPTZ,
    acknowledged_by   TEXT NOT NULL DEFAULT '',
    CONSTRAINT slips_once UNIQUE (task_id, stage, grade)
);
CREATE INDEX slips_by_case ON slips (case_id, issued_at);
CREATE INDEX slips_by_unit ON slips (unit_code, issued_at);
