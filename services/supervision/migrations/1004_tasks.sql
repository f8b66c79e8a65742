-- Supervision's own view of each case's tasks, projected from routing's events, so verification (核查/销号)
-- decides on what supervision has seen instead of asking routing over gRPC: verification works while routing
-- is down, and a resolution counts once case.resolved has reached supervision.
--
-- task_units (task → unit, from case.dispatched) becomes the projection. Rows from before this migration
-- only know their unit and start as 'dispatched'; `supervision events replay --from T --to T` over the
-- period fills in their state, people and order.
ALTER TABLE task_units RENAME TO tasks;
ALTER INDEX task_units_by_case RENAME TO tasks_by_case;
ALTER TABLE tasks RENAME CONSTRAINT task_units_pkey TO tasks_pkey;

ALTER TABLE tasks
    -- dispatched | accepted | returned | resolved | superseded, as routing has them. resolved and superseded
    -- are final: no later or replayed event moves a task out of them.
    ADD COLUMN state         TEXT NOT NULL DEFAULT 'dispatched'
        CHECK (state IN ('dispatched', 'accepted', 'returned', 'resolved', 'superseded')),
    -- Routing's per-case dispatch counter (case.dispatched's attempt): the order of the case's tasks, across
    -- rounds, the same order routing lists them in. 0 until the dispatch is seen.
    ADD COLUMN attempt       INT  NOT NULL DEFAULT 0,
    -- The case's round when the task was dispatched, so a reopening supersedes only the tasks of earlier
    -- rounds, never the one dispatched for the round it starts.
    ADD COLUMN round         INT  NOT NULL DEFAULT 1,
    ADD COLUMN case_no       TEXT NOT NULL DEFAULT '',
    ADD COLUMN category_code TEXT NOT NULL DEFAULT '',
    -- Who accepted (签收) the task, from case.accepted.
    ADD COLUMN handler_id    TEXT NOT NULL DEFAULT '',
    -- Who resolved (办结) it (the event's actor: the accepting handler or a member of the unit), whom it
    -- credits, and how it ended, from case.resolved.
    ADD COLUMN resolved_by   TEXT NOT NULL DEFAULT '',
    ADD COLUMN resolver_id   TEXT NOT NULL DEFAULT '',
    ADD COLUMN outcome       TEXT NOT NULL DEFAULT '',
    ADD COLUMN dispatched_at TIMESTAMPTZ,
    ADD COLUMN resolved_at   TIMESTAMPTZ,
    -- When the event behind the task's last move happened. The moves that can go back and forth (returned,
    -- then dispatched again by a rejected return) are taken only from an event at least this recent, so a
    -- replayed period that ends between a return and its rejection cannot leave the task returned.
    ADD COLUMN moved_at      TIMESTAMPTZ,
    ADD COLUMN updated_at    TIMESTAMPTZ NOT NULL DEFAULT now();

-- The order the projection first saw each task in: within one attempt number (events published by hand, or
-- rows from before this migration) the earlier seen is the earlier dispatched, since one case's events arrive
-- in order.
ALTER TABLE tasks ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;
