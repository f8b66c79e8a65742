-- When intake wrote each timeline step, as distinct from when the step happened (`at`, the producer's time):
-- the difference is how far the case file lags behind the loop, which the loop benchmark measures and an
-- operator may ask of one case. Added without a default first, so the existing table is not rewritten; new
-- steps take the time of their own insert, not of their batch's transaction.
ALTER TABLE timeline ADD COLUMN recorded_at TIMESTAMPTZ;
ALTER TABLE timeline ALTER COLUMN recorded_at SET DEFAULT clock_timestamp();
