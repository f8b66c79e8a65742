-- A client's secret is shown once, to whoever will hold it. Creating a client or rotating its secret gives the
-- system administrator a one-time activation code (72 hours), never the secret; the client system's operator
-- exchanges the code for the secret (Auth/ActivateClient). Until then the client's secret is one nobody knows.
-- Only hashes are kept.
ALTER TABLE clients ADD COLUMN activation_hash BYTEA, ADD COLUMN activation_expires_at TIMESTAMPTZ;
