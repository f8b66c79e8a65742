-- Every unit a case was ever dispatched to, so a department's handlers keep seeing the cases their unit handled
-- (scope U), not only the one it holds now.
ALTER TABLE cases ADD COLUMN units TEXT[] NOT NULL DEFAULT '{}';
UPDATE cases SET units = ARRAY[current_unit_code] WHERE current_unit_code <> '';
