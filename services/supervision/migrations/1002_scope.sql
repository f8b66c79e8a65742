-- Scope and separation need to know where a case is and who reported it: both come from case.registered.
-- Cases projected before this migration (or only from later events) have no place yet, so only a grant over
-- the whole deployment reaches them until their registration is seen.
ALTER TABLE cases
    ADD COLUMN area_path   TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN grid_code   TEXT   NOT NULL DEFAULT '',
    ADD COLUMN reporter_id TEXT   NOT NULL DEFAULT '';

-- Who handled the verified task, so the follow-up visit can be kept out of the handler's hands too.
ALTER TABLE closures ADD COLUMN handler_id TEXT NOT NULL DEFAULT '';
