-- A keyed digest (HMAC-SHA-256 under the PII key) of the whole normalized registration, so a reused
-- idempotency key is told apart from a true retry by every field, parties included, without keeping a second
-- copy of the personal data. Cases registered before this column existed have none and are compared by center
-- and category only, as they were.
ALTER TABLE cases ADD COLUMN registration_digest BYTEA;
