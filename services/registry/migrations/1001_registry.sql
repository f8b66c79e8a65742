-- The administrative tree (levels 1-5, 12-digit statistical codes). Rows are never deleted: a unit that
-- vanishes from a newer edition is retired, and every change is kept in division_changes.
CREATE TABLE divisions (
    code        TEXT PRIMARY KEY CHECK (code ~ '^[0-9]{12}$'),
    name        TEXT NOT NULL,
    level       SMALLINT NOT NULL CHECK (level BETWEEN 1 AND 5),
    parent_code TEXT REFERENCES divisions (code),
    edition     TEXT NOT NULL,
    retired_at  TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Children by parent, and subtrees by code prefix (text_pattern_ops serves LIKE 'prefix%').
CREATE INDEX divisions_by_parent ON divisions (parent_code, code);
CREATE INDEX divisions_by_prefix ON divisions (code text_pattern_ops);

CREATE TABLE division_changes (
    id        BIGSERIAL PRIMARY KEY,
    code      TEXT NOT NULL,
    edition   TEXT NOT NULL,
    -- added | renamed | moved | retired | restored
    change    TEXT NOT NULL,
    old_value TEXT NOT NULL DEFAULT '',
    new_value TEXT NOT NULL DEFAULT '',
    at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A center (综治中心) is the unit that receives, dispatches and supervises; it exists at levels 2-5.
CREATE TABLE centers (
    code           TEXT PRIMARY KEY REFERENCES divisions (code),
    established_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Grids hang below villages: code = village code + 3-digit sequence; a micro-grid adds 3 more digits to its grid.
CREATE TABLE grids (
    code             TEXT PRIMARY KEY CHECK (code ~ '^[0-9]{15}([0-9]{3})?$'),
    name             TEXT NOT NULL,
    village_code     TEXT NOT NULL REFERENCES divisions (code),
    kind             TEXT NOT NULL CHECK (kind IN ('grid', 'micro_grid')),
    parent_grid_code TEXT REFERENCES grids (code),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at       TIMESTAMPTZ,
    CHECK ((kind = 'micro_grid') = (parent_grid_code IS NOT NULL))
);
CREATE INDEX grids_by_village ON grids (village_code, code);

-- People: grid workers, 中心户长, mediators, department handlers. Phone and ID numbers are sealed (SM4-GCM)
-- with the masked form beside them; the plain values are never stored.
CREATE TABLE persons (
    id                 UUID PRIMARY KEY,
    name               TEXT NOT NULL,
    role               TEXT NOT NULL,
    phone_sealed       BYTEA,
    phone_masked       TEXT NOT NULL,
    id_number_sealed   BYTEA,
    id_number_masked   TEXT NOT NULL,
    home_code          TEXT NOT NULL,
    subsidy_eligible   BOOLEAN NOT NULL,
    eligibility_source TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- 一格一员: who held which grid when. The subsidy ledger reads the history, and the partial unique index lets
-- the database itself refuse a second active primary grid worker, whatever the code does.
CREATE TABLE grid_assignments (
    id         BIGSERIAL PRIMARY KEY,
    grid_code  TEXT NOT NULL REFERENCES grids (code),
    person_id  UUID NOT NULL REFERENCES persons (id),
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ended_at   TIMESTAMPTZ
);
CREATE UNIQUE INDEX one_active_worker_per_grid ON grid_assignments (grid_code) WHERE ended_at IS NULL;

-- Departments stationed at a center: 常驻 resident, 轮驻 rotating, 随驻 on call.
CREATE TABLE departments (
    code              TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    center_code       TEXT NOT NULL REFERENCES centers (code),
    stationing        TEXT NOT NULL CHECK (stationing IN ('resident', 'rotating', 'on_call')),
    category_prefixes TEXT[] NOT NULL DEFAULT '{}'
);
CREATE INDEX departments_by_center ON departments (center_code);
