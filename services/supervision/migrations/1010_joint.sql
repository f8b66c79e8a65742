-- 吹哨报到 (issue 10): each summoned co-handling unit must report in (报到) within the policy's time, and a late
-- or missing 报到 is supervised like any deadline: a deadline of stage 'report' under the co-handler's id.
ALTER TABLE deadlines DROP CONSTRAINT deadlines_stage_check;
ALTER TABLE deadlines ADD CONSTRAINT deadlines_stage_check CHECK (stage IN ('accept', 'resolve', 'report'));

-- The co-handlers summoned to each lead task, from case.joint: whom a 报到 slip goes to, and the units a task
-- slip (交办单) lists beside the lead.
CREATE TABLE co_handlers (
    co_id        TEXT PRIMARY KEY,
    lead_task_id TEXT NOT NULL,
    case_id      UUID NOT NULL,
    unit_code    TEXT NOT NULL,
    unit_name    TEXT NOT NULL,
    -- summoned | reported_in | contributed | released, as routing has them
    state        TEXT NOT NULL,
    summoned_at  TIMESTAMPTZ NOT NULL,
    -- The order the summons named them in.
    seq          BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX co_handlers_by_task ON co_handlers (lead_task_id);
