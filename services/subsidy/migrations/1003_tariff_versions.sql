-- Who wrote each version of a tariff rule (PutTariffRule); the seeded tariffs have none. Rows are never edited:
-- a new version is a new row, so every credit stays traceable to the version that priced it.
ALTER TABLE tariff_rules ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
