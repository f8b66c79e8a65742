-- A department closed or retired (a station withdrawn, a bureau merged) keeps its row, so the routing rules and
-- tasks that name it still resolve, but receives no more cases: routing skips it for the rule's fallback or the
-- center. Putting the department again with retired = false reopens it.
ALTER TABLE departments ADD COLUMN retired_at TIMESTAMPTZ;
