-- Working-day clocks (issue 9): the calendar, versioned time-limit policy, and deadlines that remember which
-- clock and limit they run on.

-- The exceptions to the Monday–Friday week (State Council 放假调休 notices), per center. center_code '' is the
-- national calendar every center inherits; a center's own rows (a local holiday, a county's 调休) override its
-- ancestors' for those days. Importing a file replaces the file's years for that center as a whole.
CREATE TABLE calendar_days (
    center_code TEXT NOT NULL,
    day         DATE NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('holiday', 'workday')),
    name        TEXT NOT NULL,
    imported_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    imported_by TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (center_code, day)
);

-- Time-limit policy versions. `rules` is the CSV supervision::policy parses (category_prefix, urgency, stage,
-- clock, amount), kept as the operator wrote it. A case keeps the version its first clock started under.
CREATE TABLE time_policies (
    version           INT PRIMARY KEY CHECK (version > 0),
    rules             TEXT NOT NULL,
    remind_at_percent INT  NOT NULL DEFAULT 80 CHECK (remind_at_percent BETWEEN 1 AND 99),
    red_after_percent INT  NOT NULL DEFAULT 100 CHECK (red_after_percent >= 1),
    score_on_time     INT  NOT NULL DEFAULT 1,
    score_yellow      INT  NOT NULL DEFAULT -5,
    score_red         INT  NOT NULL DEFAULT -10,
    max_extensions    INT  NOT NULL DEFAULT 2 CHECK (max_extensions >= 0),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by        TEXT NOT NULL DEFAULT ''
);

-- Version 1, from DOMAIN.md's common limits: ordinary cases 签收 1 working day and 办结 5; urgent ones 2 and 24
-- calendar hours; emergencies 30 minutes and 2 hours (the limits the seconds table had for them).
INSERT INTO time_policies (version, rules, created_by) VALUES (1,
'category_prefix,urgency,stage,clock,amount
,*,accept,working_days,1d
,*,resolve,working_days,5d
,urgent,accept,calendar_hours,2h
,urgent,resolve,calendar_hours,24h
,emergency,accept,calendar_hours,30m
,emergency,resolve,calendar_hours,2h
', 'migration');

DROP TABLE deadline_policy;

ALTER TABLE cases ADD COLUMN policy_version INT;

ALTER TABLE deadlines
    -- calendar_hours | working_days | working_hours; empty for deadlines from before this migration.
    ADD COLUMN clock          TEXT NOT NULL DEFAULT '',
    -- The limit in counted seconds on that clock, and when the clock started.
    ADD COLUMN limit_seconds  BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN started_at     TIMESTAMPTZ,
    ADD COLUMN policy_version INT;
