-- Routing's own projection of the cases it dispatches, from case.registered; `round` moves on case.reopened.
CREATE TABLE cases (
    id            UUID PRIMARY KEY,
    case_no       TEXT NOT NULL,
    category_code TEXT NOT NULL,
    urgency       TEXT NOT NULL,
    village_code  TEXT NOT NULL,
    -- Village first, up to the province.
    area_path     TEXT[] NOT NULL,
    center_code   TEXT NOT NULL,
    round         INT  NOT NULL DEFAULT 1,
    registered_at TIMESTAMPTZ NOT NULL
);

-- The routing table (category × area × urgency → unit). Empty prefixes and urgency match every case.
CREATE TABLE rules (
    id              TEXT PRIMARY KEY,
    priority        INT  NOT NULL,
    category_prefix TEXT NOT NULL DEFAULT '',
    area_prefix     TEXT NOT NULL DEFAULT '',
    urgency         TEXT NOT NULL DEFAULT '',
    unit_kind       TEXT NOT NULL CHECK (unit_kind IN ('department', 'center')),
    unit_code       TEXT NOT NULL,
    unit_name       TEXT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- Slip numbers are bumped inside the dispatching transaction, like intake's case numbers, so a rolled-back
-- dispatch gives its number back and a committed one is never reused.
CREATE TABLE slip_numbers (
    center_prefix TEXT NOT NULL,
    local_day     TEXT NOT NULL,
    last_seq      INT  NOT NULL,
    PRIMARY KEY (center_prefix, local_day)
);

-- One row per 《工作任务交办单》. A case has one live task at a time; earlier ones stay as history.
CREATE TABLE tasks (
    id                 UUID PRIMARY KEY,
    case_id            UUID NOT NULL REFERENCES cases (id),
    round              INT  NOT NULL,
    attempt            INT  NOT NULL,
    slip_no            TEXT NOT NULL CONSTRAINT tasks_slip_no_key UNIQUE,
    unit_kind          TEXT NOT NULL,
    unit_code          TEXT NOT NULL,
    unit_name          TEXT NOT NULL,
    -- Empty when no rule matched and the center kept the case (兜底).
    rule_id            TEXT NOT NULL DEFAULT '',
    state              TEXT NOT NULL,
    category_code      TEXT NOT NULL,
    return_reason_code TEXT NOT NULL DEFAULT '',
    return_reason      TEXT NOT NULL DEFAULT '',
    review_note        TEXT NOT NULL DEFAULT '',
    reviewer_id        TEXT NOT NULL DEFAULT '',
    outcome            TEXT NOT NULL DEFAULT '',
    outcome_note       TEXT NOT NULL DEFAULT '',
    handler_id         TEXT NOT NULL DEFAULT '',
    resolver_id        TEXT NOT NULL DEFAULT '',
    dispatched_at      TIMESTAMPTZ NOT NULL,
    accepted_at        TIMESTAMPTZ,
    returned_at        TIMESTAMPTZ,
    reviewed_at        TIMESTAMPTZ,
    resolved_at        TIMESTAMPTZ,
    updated_at         TIMESTAMPTZ NOT NULL,
    CONSTRAINT tasks_case_attempt_key UNIQUE (case_id, attempt)
);

-- Units whose return was approved do not get the case again in the same round; a reopening starts afresh.
CREATE TABLE exclusions (
    case_id   UUID NOT NULL REFERENCES cases (id),
    round     INT  NOT NULL,
    unit_kind TEXT NOT NULL,
    unit_code TEXT NOT NULL,
    PRIMARY KEY (case_id, round, unit_kind, unit_code)
);
