-- Manual dispatch, 召回 and the hops of a case between centers (上报 / 下派), rules bound to the registry.

-- The center holding the case now: the registering center until a hop moves it. Closed mirrors supervision's
-- 销号 (case.closed, undone by case.reopened): a closed case is not dispatched, recalled or moved by hand.
ALTER TABLE cases ADD COLUMN holding_center TEXT NOT NULL DEFAULT '';
UPDATE cases SET holding_center = center_code;
ALTER TABLE cases ADD COLUMN closed BOOLEAN NOT NULL DEFAULT FALSE;

-- Each task records the center that issued its 交办单, how its unit was chosen (rule, fallback, center 兜底,
-- manual), a dispatcher's reason, and a 召回's reason and actor.
ALTER TABLE tasks ADD COLUMN center_code TEXT NOT NULL DEFAULT '';
UPDATE tasks t SET center_code = c.center_code FROM cases c WHERE c.id = t.case_id;
ALTER TABLE tasks ADD COLUMN via TEXT NOT NULL DEFAULT 'rule';
UPDATE tasks SET via = 'center' WHERE rule_id = '';
ALTER TABLE tasks ADD COLUMN dispatch_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN recall_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN recalled_by TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN recalled_at TIMESTAMPTZ;

-- A case has one live task at a time: the code supersedes before it dispatches, and the database refuses a
-- second, whatever the code does (two dispatchers racing past the case lock would be a bug, not a case).
CREATE UNIQUE INDEX tasks_one_live_per_case ON tasks (case_id) WHERE state IN ('dispatched', 'accepted', 'returned');

-- Every hop of a case, in order: the case file's 上报 / 下派 history as routing decided it.
CREATE TABLE hops (
    id                 BIGSERIAL PRIMARY KEY,
    case_id            UUID NOT NULL REFERENCES cases (id),
    direction          TEXT NOT NULL CHECK (direction IN ('up', 'down')),
    from_center        TEXT NOT NULL,
    to_center          TEXT NOT NULL,
    skip_level         BOOLEAN NOT NULL,
    reason             TEXT NOT NULL,
    actor              TEXT NOT NULL,
    superseded_task_id UUID,
    at                 TIMESTAMPTZ NOT NULL
);
CREATE INDEX hops_by_case ON hops (case_id, id);

-- A rule's fallback for days its unit is off duty (轮驻) or retired, and the center its unit is at, as the
-- registry said when the rule was put (after a hop only the holding center's own rules apply).
ALTER TABLE rules ADD COLUMN fallback_kind TEXT NOT NULL DEFAULT '';
ALTER TABLE rules ADD COLUMN fallback_code TEXT NOT NULL DEFAULT '';
ALTER TABLE rules ADD COLUMN fallback_name TEXT NOT NULL DEFAULT '';
ALTER TABLE rules ADD COLUMN unit_center TEXT NOT NULL DEFAULT '';
-- The rules are cached in memory and re-read when (count, newest update) changes; this keeps that check cheap.
CREATE INDEX rules_updated_at ON rules (updated_at);

-- Categories marked urgent may go up past the parent center (越级上报). Data, not code: a deployment edits it.
CREATE TABLE urgent_categories (
    category_prefix TEXT PRIMARY KEY CHECK (category_prefix ~ '^[0-9]{1,6}$'),
    name            TEXT NOT NULL
);
INSERT INTO urgent_categories (category_prefix, name) VALUES
    ('0205', '自然灾害(地质/洪涝)'),
    ('0206', '公共安全'),
    ('0208', '涉稳线索');
