-- Tariffs are versioned: a credit keeps the rule id and version it was computed under, and a new tariff adds a
-- row with a higher version (and deactivates the old one) instead of editing it, so every credit stays
-- traceable to the rule that priced it.
CREATE TABLE tariff_rules (
    id              TEXT    NOT NULL,
    version         INT     NOT NULL CHECK (version > 0),
    -- Category code prefix; "" matches every category. The longest matching prefix wins.
    category_prefix TEXT    NOT NULL,
    -- Money is integer fen (1 元 = 100 fen), never floating point.
    amount_fen      BIGINT  NOT NULL CHECK (amount_fen >= 0),
    description     TEXT    NOT NULL,
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (id, version)
);

INSERT INTO tariff_rules (id, version, category_prefix, amount_fen, description) VALUES
    ('default',          1, '',     10000, '普通案件 ordinary case: 100 元'),
    ('major-land',       1, '0104', 30000, '重大 土地山林水利权属纠纷: 300 元'),
    ('major-demolition', 1, '0105', 30000, '重大 征地拆迁纠纷: 300 元'),
    ('stability',        1, '0208', 50000, '涉稳线索 stability tip: 500 元');

-- One credit per case, ever: a redelivered or repeated follow-up (after a reopen) never pays twice, and the
-- database enforces it rather than a check-then-insert.
CREATE TABLE credits (
    id             UUID        PRIMARY KEY,
    case_id        UUID        NOT NULL CONSTRAINT credits_case_id_key UNIQUE,
    case_no        TEXT        NOT NULL,
    person_id      TEXT        NOT NULL,
    amount_fen     BIGINT      NOT NULL CHECK (amount_fen >= 0),
    tariff_rule_id TEXT        NOT NULL,
    tariff_version INT         NOT NULL,
    credited_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (tariff_rule_id, tariff_version) REFERENCES tariff_rules (id, version)
);
CREATE INDEX credits_person ON credits (person_id, credited_at);

-- Why a confirmed case was or was not credited, for audit (全过程留痕): ineligible and unknown people are
-- recorded here instead of being credited.
CREATE TABLE credit_decisions (
    id        BIGSERIAL   PRIMARY KEY,
    case_id   UUID        NOT NULL,
    person_id TEXT        NOT NULL,
    -- credited | ineligible | unknown_person | already_credited | no_tariff
    decision  TEXT        NOT NULL,
    reason    TEXT        NOT NULL,
    at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX credit_decisions_case ON credit_decisions (case_id);
