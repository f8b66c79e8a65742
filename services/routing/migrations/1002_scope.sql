-- Scope checks need the case's grid as well as its area path: a grid worker's grant names a grid, and a case
-- registered in a micro-grid lies under it. Cases recorded before this column read as having no grid, so only
-- their area path places them.
ALTER TABLE cases ADD COLUMN grid_code TEXT NOT NULL DEFAULT '';

-- A center's view of its tasks filters on the case's area path, a unit's on the task's unit.
CREATE INDEX cases_area_path ON cases USING GIN (area_path);
CREATE INDEX tasks_unit_code ON tasks (unit_code);
