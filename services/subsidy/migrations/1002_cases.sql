-- Where each case is, from case.registered: a center's view of credits is the credits of cases in its area,
-- filtered in SQL by this path (village first) and grid. A credit whose case registration subsidy never saw
-- has no place, so only its own person and grants over the whole deployment see it.
CREATE TABLE cases (
    case_id   UUID   PRIMARY KEY,
    area_path TEXT[] NOT NULL,
    grid_code TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX cases_area_path ON cases USING GIN (area_path);
