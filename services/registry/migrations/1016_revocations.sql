-- Ended tokens: every access token of `subject` issued at or before `not_before` (Unix seconds, the tokens' own
-- `iat` precision) is refused. Access tokens are verified by each service from its cache without asking the
-- registry, so a disabled account, a changed password, a revoked grant or a revoked or rotated client secret is
-- written here and every service and gateway follows the list (ListRevocations) to refuse such tokens within
-- seconds. Rows older than the longest token lifetime no longer matter and are not served.
CREATE TABLE revocations (
    seq        BIGSERIAL PRIMARY KEY,
    subject    TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX revocations_by_time ON revocations (at);
-- What the issuer asks before signing: the subject's latest revocation, so a token issued after it is dated
-- after it (see revocations::issue_time).
CREATE INDEX revocations_by_subject ON revocations (subject, not_before);
