-- One account per person (issue 19): a grid worker's grants follow the person's assignments, so a second
-- account for the same person, made and first-passworded by the system administrator, would have been a way for
-- that administrator to act as the grid worker. Enforced here, so no code path (or race) can make a second.
-- A deployment that already holds two accounts for one person must disable and remove one before upgrading.
CREATE UNIQUE INDEX accounts_one_per_person ON accounts (person_id);
