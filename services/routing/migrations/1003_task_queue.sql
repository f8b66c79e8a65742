-- The task queue needs to know which tasks are late. Supervision owns the deadlines and says so with
-- case.overdue (task id, stage, due time); routing keeps the earliest missed one on the task. Routing never
-- learns a deadline that was met, so a task that is not overdue has no due time here.
ALTER TABLE tasks ADD COLUMN overdue BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE tasks ADD COLUMN due_at TIMESTAMPTZ;
ALTER TABLE tasks ADD COLUMN overdue_stage TEXT NOT NULL DEFAULT '';

-- A unit's open tasks, in the queue's order.
CREATE INDEX tasks_open_queue ON tasks (unit_code, (NOT overdue), (COALESCE(due_at, 'infinity')), dispatched_at, id)
    WHERE state IN ('dispatched', 'accepted', 'returned');
-- A handler's own.
CREATE INDEX tasks_open_by_handler ON tasks (handler_id) WHERE state IN ('dispatched', 'accepted', 'returned') AND handler_id <> '';
