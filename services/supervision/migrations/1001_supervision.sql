-- How long each stage may take, by urgency. Plain seconds for now: working-day calendars (holidays and 调休
-- make-up workdays) come later and will replace the arithmetic, not this table's role.
CREATE TABLE deadline_policy (
    urgency TEXT NOT NULL,
    -- accept (签收) | resolve (办结)
    stage   TEXT NOT NULL CHECK (stage IN ('accept', 'resolve')),
    seconds INT  NOT NULL CHECK (seconds > 0),
    PRIMARY KEY (urgency, stage)
);

INSERT INTO deadline_policy (urgency, stage, seconds) VALUES
    ('normal',    'accept',  86400),
    ('normal',    'resolve', 432000),
    ('urgent',    'accept',  7200),
    ('urgent',    'resolve', 86400),
    ('emergency', 'accept',  1800),
    ('emergency', 'resolve', 7200);

-- What supervision knows of each case, projected from events (and from routing's answer at verification).
CREATE TABLE cases (
    case_id       UUID PRIMARY KEY,
    case_no       TEXT NOT NULL DEFAULT '',
    category_code TEXT NOT NULL DEFAULT '',
    urgency       TEXT NOT NULL DEFAULT 'normal',
    -- Starts at 1; every reopening (重办) begins the next round.
    round         INT  NOT NULL DEFAULT 1 CHECK (round > 0),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Deadlines live here and are fired from here, so a restart neither loses nor repeats one.
CREATE TABLE deadlines (
    id         UUID PRIMARY KEY,
    case_id    UUID NOT NULL,
    task_id    TEXT NOT NULL,
    stage      TEXT NOT NULL CHECK (stage IN ('accept', 'resolve')),
    due_at     TIMESTAMPTZ NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'met', 'fired', 'cancelled')),
    fired_at   TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- One deadline per task and stage, whatever the number of times an event is seen.
    CONSTRAINT deadlines_task_stage_key UNIQUE (task_id, stage)
);
CREATE INDEX deadlines_due ON deadlines (due_at) WHERE state = 'pending';
CREATE INDEX deadlines_case ON deadlines (case_id);

-- One row per verified round (核查/销号): closed (then followed up) or reopened when verification failed.
CREATE TABLE closures (
    case_id        UUID NOT NULL,
    round          INT  NOT NULL,
    -- closed | reopened | followed_up
    state          TEXT NOT NULL CHECK (state IN ('closed', 'reopened', 'followed_up')),
    closure_reason TEXT NOT NULL DEFAULT '',
    -- The routing task whose result was verified; a task is verified at most once.
    task_id        TEXT NOT NULL,
    resolver_id    TEXT NOT NULL DEFAULT '',
    category_code  TEXT NOT NULL DEFAULT '',
    case_no        TEXT NOT NULL DEFAULT '',
    verifier_id    TEXT NOT NULL,
    note           TEXT NOT NULL DEFAULT '',
    satisfaction   TEXT NOT NULL DEFAULT '',
    visitor_id     TEXT NOT NULL DEFAULT '',
    follow_up_note TEXT NOT NULL DEFAULT '',
    closed_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    followed_up_at TIMESTAMPTZ,
    PRIMARY KEY (case_id, round),
    CONSTRAINT closures_task_key UNIQUE (task_id)
);
