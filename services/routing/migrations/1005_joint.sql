-- 吹哨报到 (issue 10): the co-handling units (协办) summoned to a lead task (主办). The lead task stays the case's
-- one live task; co-handlers hang on it, each with its own state, and the lead resolves only when every one has
-- contributed or been released.
CREATE TABLE co_handlers (
    id             UUID PRIMARY KEY,
    case_id        UUID NOT NULL REFERENCES cases (id),
    lead_task_id   UUID NOT NULL REFERENCES tasks (id),
    unit_kind      TEXT NOT NULL,
    unit_code      TEXT NOT NULL,
    unit_name      TEXT NOT NULL,
    -- summoned | reported_in | contributed | released
    state          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    summoned_by    TEXT NOT NULL,
    summoned_at    TIMESTAMPTZ NOT NULL,
    reported_by    TEXT NOT NULL DEFAULT '',
    reported_at    TIMESTAMPTZ,
    contribution   TEXT NOT NULL DEFAULT '',
    contributed_at TIMESTAMPTZ,
    released_by    TEXT NOT NULL DEFAULT '',
    released_at    TIMESTAMPTZ,
    release_reason TEXT NOT NULL DEFAULT '',
    -- The order the dispatcher named them in (one summons names several at the same instant).
    seq            BIGINT GENERATED ALWAYS AS IDENTITY,
    -- A unit is summoned to a task once.
    CONSTRAINT co_handlers_once UNIQUE (lead_task_id, unit_kind, unit_code)
);
CREATE INDEX co_handlers_by_task ON co_handlers (lead_task_id);
CREATE INDEX co_handlers_by_unit ON co_handlers (unit_code, state);
