-- Who wrote each version of a category (PutCategory); the seeded table has none. Rows are never edited: a new
-- version is a new row, so a case keeps the version it was registered under.
ALTER TABLE categories ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
