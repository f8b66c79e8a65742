-- 疑似重复件 and merging (issue 10).
--
-- The blind index of each party's phone: a keyed digest (HMAC under the personal-data key) of the normalised
-- number, so a registration finds earlier cases with the same phone by equality, never by decrypting. NULL for
-- a party without a (mobile) phone, and for parties registered before this column existed.
ALTER TABLE case_parties ADD COLUMN phone_index BYTEA;
CREATE INDEX case_parties_phone_index ON case_parties (phone_index) WHERE phone_index IS NOT NULL;

-- The case this one is merged into, while it is (state 'merged'); NULL again after an unmerge.
ALTER TABLE cases ADD COLUMN merged_into UUID REFERENCES cases (id);
CREATE INDEX cases_merged_into ON cases (merged_into) WHERE merged_into IS NOT NULL;

-- Candidates are looked for among the open cases of one village registered within a window: a partial index on
-- exactly those keeps the search a short range scan however many cases are closed or merged. The predicate
-- names the states that are not open, so a new open state needs no new index.
CREATE INDEX cases_open_by_village ON cases (village_code, registered_at DESC)
    INCLUDE (id, category_code)
    WHERE state NOT IN ('closed', 'merged');

-- Every merge, kept after an unmerge (unmerged_at set) for the history.
CREATE TABLE case_merges (
    id            BIGSERIAL PRIMARY KEY,
    case_id       UUID NOT NULL REFERENCES cases (id),
    into_case_id  UUID NOT NULL REFERENCES cases (id),
    reason        TEXT NOT NULL,
    merged_by     TEXT NOT NULL,
    merged_at     TIMESTAMPTZ NOT NULL,
    unmerged_by   TEXT,
    unmerged_at   TIMESTAMPTZ,
    unmerge_reason TEXT
);
-- At most one live merge per case: the database, not only the lock order, refuses a second.
CREATE UNIQUE INDEX case_merges_live ON case_merges (case_id) WHERE unmerged_at IS NULL;
CREATE INDEX case_merges_into ON case_merges (into_case_id) WHERE unmerged_at IS NULL;
