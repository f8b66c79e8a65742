-- What slips print instead of bare codes (issue 18), from case.registered: the category's name at the version
-- the case was registered under, and the names of the case's area path (the center a red card is copied to is
-- on it). Cases registered before this read '' and '{}', and their slips print the codes as before.
ALTER TABLE cases
    ADD COLUMN category_name TEXT   NOT NULL DEFAULT '',
    ADD COLUMN area_names    TEXT[] NOT NULL DEFAULT '{}';
