-- The unit each task was dispatched to, so a unit's handlers see the deadlines of their own tasks (scope U)
-- without seeing the rest of the case.
CREATE TABLE task_units (
    task_id   TEXT PRIMARY KEY,
    case_id   UUID NOT NULL,
    unit_code TEXT NOT NULL
);
CREATE INDEX task_units_by_case ON task_units (case_id);
