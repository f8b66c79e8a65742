-- Accounts are activated by their holders and approved by the security administrator (三权分立): the system
-- administrator who creates an account chooses no password and sees no second-factor secret. The holder
-- activates it with a one-time code (only its hash is kept), choosing the password and enrolling TOTP; the
-- grid grants that follow the person's 一格一员 assignments count only once the security administrator has
-- approved the account, so one administrator alone cannot act as a grid worker.
ALTER TABLE accounts
    ADD COLUMN activation_hash       BYTEA,
    ADD COLUMN activation_expires_at TIMESTAMPTZ,
    ADD COLUMN approved_at           TIMESTAMPTZ,
    ADD COLUMN approved_by           TEXT;
-- Accounts made before these rules were made by the deployment's own seeding or an administrator under the
-- old ones; they stand approved as they are.
UPDATE accounts SET approved_at = created_at, approved_by = 'migration 1017';
