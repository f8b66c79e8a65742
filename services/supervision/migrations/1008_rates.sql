-- 三率 and rankings (issue 9): the indexes the per-unit and per-node aggregate reads by. The figures are computed
-- from the projection's own rows (deadlines, closures, slips) at query time, with no table of their own: a
-- county-month of 100,000 cases aggregates in one to two seconds on a 2-core machine (supervision_bench), so a
-- rollup table waits until that is too slow. Full indexes rather than partial ones: the states the query
-- compares are bound parameters, which a generic plan cannot match against a partial index's predicate.

-- Stages count in the period they were due in, cancelled ones never: a range over due_at of the rest.
CREATE INDEX deadlines_by_due ON deadlines (due_at) WHERE state <> 'cancelled';

-- Satisfaction counts visits by when they were made.
CREATE INDEX closures_by_visit ON closures (followed_up_at) WHERE followed_up_at IS NOT NULL;

-- Yellow and red cards count by when they were issued; reminders cost nothing and are left out.
CREATE INDEX slips_by_issue ON slips (issued_at) WHERE grade IN ('yellow', 'red');

-- A node's cases: every case whose area path holds the node's code.
CREATE INDEX cases_by_area ON cases USING gin (area_path);
