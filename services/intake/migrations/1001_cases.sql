-- The category code table is versioned: a case keeps the version it was registered under, and a new edition
-- adds rows with a higher version instead of editing old ones.
CREATE TABLE categories (
    code    TEXT NOT NULL,
    version INT  NOT NULL,
    -- The case kind the category belongs to: dispute | risk | demand (demand also covers inquiry).
    kind    TEXT NOT NULL,
    name    TEXT NOT NULL,
    active  BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (code, version)
);

-- Case numbers are the registering center's code + local date + a sequence that is never reused: the counter
-- row is bumped inside the registering transaction, so a failed registration rolls its number back with it.
CREATE TABLE case_numbers (
    center_prefix TEXT NOT NULL,
    local_day     TEXT NOT NULL,
    last_seq      INT  NOT NULL,
    PRIMARY KEY (center_prefix, local_day)
);

CREATE TABLE cases (
    id                UUID PRIMARY KEY,
    case_no           TEXT NOT NULL CONSTRAINT cases_case_no_key UNIQUE,
    idempotency_key   TEXT NOT NULL CONSTRAINT cases_idempotency_key_key UNIQUE,
    center_code       TEXT NOT NULL,
    channel           TEXT NOT NULL,
    kind              TEXT NOT NULL,
    category_code     TEXT NOT NULL,
    category_version  INT  NOT NULL,
    urgency           TEXT NOT NULL,
    title             TEXT NOT NULL,
    description       TEXT NOT NULL,
    grid_code         TEXT NOT NULL,
    village_code      TEXT NOT NULL,
    area_path         TEXT[] NOT NULL,
    reporter_id       TEXT NOT NULL,
    operator_id       TEXT NOT NULL,
    -- A projection of the case's events, for reading; each service keeps the state it decides on.
    state             TEXT NOT NULL,
    current_task_id   TEXT NOT NULL DEFAULT '',
    current_unit_code TEXT NOT NULL DEFAULT '',
    registered_at     TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (category_code, category_version) REFERENCES categories (code, version)
);
CREATE INDEX cases_by_center ON cases (center_code, registered_at DESC, id);

-- Parties' phone and ID numbers are stored SM4-encrypted, with the masked form beside them for display.
CREATE TABLE case_parties (
    case_id          UUID NOT NULL REFERENCES cases (id),
    ordinal          INT  NOT NULL,
    name             TEXT NOT NULL,
    role             TEXT NOT NULL,
    phone_sealed     BYTEA,
    phone_masked     TEXT NOT NULL,
    id_number_sealed BYTEA,
    id_number_masked TEXT NOT NULL,
    PRIMARY KEY (case_id, ordinal)
);

-- The case file (电子卷宗): append-only, one row per step, whoever recorded it.
CREATE TABLE timeline (
    id         BIGSERIAL PRIMARY KEY,
    case_id    UUID NOT NULL REFERENCES cases (id),
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    detail     TEXT NOT NULL,
    source     TEXT NOT NULL,
    event_id   TEXT CONSTRAINT timeline_event_id_key UNIQUE
);
CREATE INDEX timeline_by_case ON timeline (case_id, at, id);

INSERT INTO categories (code, version, kind, name) VALUES
    ('0101', 1, 'dispute', '婚姻家庭'),
    ('0102', 1, 'dispute', '邻里纠纷'),
    ('0103', 1, 'dispute', '房屋宅基地'),
    ('0104', 1, 'dispute', '土地山林水利权属'),
    ('0105', 1, 'dispute', '征地拆迁'),
    ('0106', 1, 'dispute', '劳资纠纷'),
    ('0107', 1, 'dispute', '医患纠纷'),
    ('0108', 1, 'dispute', '物业管理'),
    ('0109', 1, 'dispute', '建筑工程'),
    ('0110', 1, 'dispute', '消费维权'),
    ('0111', 1, 'dispute', '合同/民间借贷'),
    ('0112', 1, 'dispute', '环境污染'),
    ('0113', 1, 'dispute', '村(社区)务管理'),
    ('0114', 1, 'dispute', '农村土地承包/"三资"'),
    ('0115', 1, 'dispute', '民族宗教'),
    ('0116', 1, 'dispute', '交通事故'),
    ('0117', 1, 'dispute', '旅游/客栈经营'),
    ('0199', 1, 'dispute', '其他纠纷'),
    ('0201', 1, 'risk', '消防安全'),
    ('0202', 1, 'risk', '安全生产'),
    ('0203', 1, 'risk', '食品药品'),
    ('0204', 1, 'risk', '道路交通'),
    ('0205', 1, 'risk', '自然灾害(地质/洪涝)'),
    ('0206', 1, 'risk', '公共安全'),
    ('0207', 1, 'risk', '治安隐患'),
    ('0208', 1, 'risk', '涉稳线索'),
    ('0209', 1, 'risk', '重点人员'),
    ('0299', 1, 'risk', '其他风险'),
    ('0301', 1, 'demand', '咨询'),
    ('0302', 1, 'demand', '求助'),
    ('0303', 1, 'demand', '投诉'),
    ('0304', 1, 'demand', '举报'),
    ('0305', 1, 'demand', '建议');
