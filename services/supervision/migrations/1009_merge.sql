-- A case merged into another (case.merged) is handled there: supervision keeps the target's number while the
-- merge stands, refuses to verify or follow up the merged case itself (so it is never closed or credited), and
-- clears it on case.unmerged.
ALTER TABLE cases ADD COLUMN merged_into TEXT;
