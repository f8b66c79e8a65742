-- Per node, the number of active descendants at each level below it, so per-level counts of the national
-- tree answer from a handful of rows instead of a scan. The nation root is '000000000000' (no division row,
-- hence no foreign key). Every import rebuilds it set-wise inside its own transaction.
CREATE TABLE division_counts (
    code  TEXT NOT NULL,
    level SMALLINT NOT NULL CHECK (level BETWEEN 1 AND 5),
    n     BIGINT NOT NULL,
    PRIMARY KEY (code, level)
);

-- The import checks every parent itself (in the file, or active in the registry) and units are never
-- deleted, so the self-referencing foreign key only re-checked what was known; its per-row trigger also locks
-- every parent row (measured: the old ON CONFLICT merge with it took 13 s of an 18 s national import).
ALTER TABLE divisions DROP CONSTRAINT IF EXISTS divisions_parent_code_fkey;

-- Opening and closing centers is kept as history; the centers table itself holds the open ones.
CREATE TABLE center_changes (
    id     BIGSERIAL PRIMARY KEY,
    code   TEXT NOT NULL,
    -- established | closed
    change TEXT NOT NULL CHECK (change IN ('established', 'closed')),
    at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A rotating (轮驻) department's schedule: each line is a weekday (ISO 1 Monday .. 7 Sunday) or an inclusive
-- date range, stationed or not. A date range outranks a weekday (holidays, special stints); when several lines
-- of the same kind apply, "not stationed" wins, because sending a case to an absent department is the worse
-- mistake. No line for the day means not on duty.
CREATE TABLE department_rotations (
    id              BIGSERIAL PRIMARY KEY,
    department_code TEXT NOT NULL REFERENCES departments (code) ON DELETE CASCADE,
    weekday         SMALLINT CHECK (weekday BETWEEN 1 AND 7),
    from_date       DATE,
    to_date         DATE,
    stationed       BOOLEAN NOT NULL,
    CHECK ((weekday IS NOT NULL AND from_date IS NULL AND to_date IS NULL)
        OR (weekday IS NULL AND from_date IS NOT NULL AND to_date IS NOT NULL AND from_date <= to_date))
);
CREATE INDEX department_rotations_by_department ON department_rotations (department_code);

-- Every change of a person's subsidy eligibility, with the source before and after.
CREATE TABLE eligibility_changes (
    id            BIGSERIAL PRIMARY KEY,
    person_id     UUID NOT NULL REFERENCES persons (id),
    from_eligible BOOLEAN NOT NULL,
    to_eligible   BOOLEAN NOT NULL,
    from_source   TEXT NOT NULL,
    to_source     TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    changed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX eligibility_changes_by_person ON eligibility_changes (person_id, id);
