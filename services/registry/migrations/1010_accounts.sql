-- The embedded issuer: accounts of people in the registry, their grants, sign-in sessions with rotating
-- refresh tokens, and client credentials of other government systems. Secrets are stored only as hashes
-- (argon2id for passwords, SHA-256 for random high-entropy tokens and client secrets).

CREATE TABLE accounts (
    id                  UUID PRIMARY KEY,
    username            TEXT NOT NULL CONSTRAINT accounts_username_key UNIQUE,
    person_id           UUID NOT NULL REFERENCES persons (id),
    display_name        TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    password_changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    must_change         BOOLEAN NOT NULL DEFAULT TRUE,
    totp_secret         BYTEA,
    -- The last TOTP time step accepted, so a code is never accepted twice.
    totp_last_step      BIGINT NOT NULL DEFAULT 0,
    failed_count        INT NOT NULL DEFAULT 0,
    locked_until        TIMESTAMPTZ,
    last_sign_in_at     TIMESTAMPTZ,
    disabled_at         TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The last passwords of an account, so a change cannot go back to one of them.
CREATE TABLE password_history (
    account_id    UUID NOT NULL REFERENCES accounts (id),
    password_hash TEXT NOT NULL,
    changed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX password_history_by_account ON password_history (account_id, changed_at DESC);

-- A role over a node (division or grid code, '*' for all) or a unit, for a time. Grid workers' grants over
-- their grids are not stored: they follow the 一格一员 assignments at every sign-in and refresh.
CREATE TABLE grants (
    id         UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES accounts (id),
    role       TEXT NOT NULL,
    scope      TEXT NOT NULL,
    unit       TEXT NOT NULL DEFAULT '',
    valid_from TIMESTAMPTZ NOT NULL DEFAULT now(),
    valid_to   TIMESTAMPTZ,
    granted_by TEXT NOT NULL,
    revoked_at TIMESTAMPTZ,
    revoked_by TEXT
);
CREATE INDEX grants_by_account ON grants (account_id);

-- A sign-in session is one refresh-token family: every refresh spends one token and issues the next; a spent
-- token presented again means it was stolen, and the whole session ends.
CREATE TABLE sessions (
    id           UUID PRIMARY KEY,
    account_id   UUID NOT NULL REFERENCES accounts (id),
    amr          TEXT[] NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    revoked_why  TEXT
);

CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    session_id UUID NOT NULL REFERENCES sessions (id),
    issued_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    spent_at   TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

CREATE TABLE clients (
    client_id   TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    scope       TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    disabled_at TIMESTAMPTZ
);
