-- The tree ledger (树形动态管理台账), projected from the case events. ledger_cases holds each case's current
-- place in the ledger; ledger_counts holds the rolled-up counts per node, changed by the same transaction that
-- changes a case row (and records the event in the inbox), so queries read a handful of rows and never scan
-- cases.
CREATE TABLE ledger_cases (
    case_id       UUID PRIMARY KEY,
    kind          TEXT NOT NULL,
    -- risk for kind risk, case for dispute/demand/inquiry (and anything unknown).
    kind_class    TEXT NOT NULL CHECK (kind_class IN ('risk', 'case')),
    village_code  TEXT NOT NULL,
    grid_code     TEXT NOT NULL DEFAULT '',
    -- Every node the case counts at, bottom up: micro-grid, grid, village, township, county, prefecture,
    -- province. Fixed at registration, so a later transition updates exactly the rows registration created.
    nodes         TEXT[] NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    -- Overdue in the current open period; a reopened case starts a new one.
    overdue       BOOLEAN NOT NULL DEFAULT false,
    registered_at TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    CHECK (NOT (overdue AND state = 'closed'))
);

CREATE TABLE ledger_counts (
    code          TEXT NOT NULL,
    kind_class    TEXT NOT NULL CHECK (kind_class IN ('risk', 'case')),
    open_count    BIGINT NOT NULL DEFAULT 0 CHECK (open_count >= 0),
    overdue_count BIGINT NOT NULL DEFAULT 0 CHECK (overdue_count >= 0 AND overdue_count <= open_count),
    closed_count  BIGINT NOT NULL DEFAULT 0 CHECK (closed_count >= 0),
    PRIMARY KEY (code, kind_class)
);

-- 工作指令: a center instructs a subtree; every village center in it is a recipient.
CREATE TABLE directives (
    id                 UUID PRIMARY KEY,
    issuer_center_code TEXT NOT NULL REFERENCES centers (code),
    target_code        TEXT NOT NULL REFERENCES divisions (code),
    title              TEXT NOT NULL,
    body               TEXT NOT NULL,
    due_at             TIMESTAMPTZ NOT NULL,
    issued_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE directive_recipients (
    directive_id    UUID NOT NULL REFERENCES directives (id),
    center_code     TEXT NOT NULL REFERENCES centers (code),
    -- The child of the target this recipient lies under (itself when it is a child or the target), fixed at
    -- issue time so GetDirective rolls up per branch without walking the tree.
    branch_code     TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'acknowledged', 'answered')),
    acknowledged_at TIMESTAMPTZ,
    answered_at     TIMESTAMPTZ,
    report          TEXT,
    PRIMARY KEY (directive_id, center_code),
    CHECK ((status = 'pending') = (acknowledged_at IS NULL)),
    CHECK ((status = 'answered') = (answered_at IS NOT NULL AND report IS NOT NULL))
);
-- Pages of one status in code order.
CREATE INDEX directive_recipients_by_status ON directive_recipients (directive_id, status, center_code);
