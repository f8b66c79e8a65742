-- The case board needs two facts the state alone does not give. `overdue`: a deadline was missed in the
-- current open period (case.overdue), cleared when the case is closed or reopened, as the tree ledger counts
-- it. `awaiting_follow_up`: closed and not yet visited (回访); set by case.closed, cleared by case.followed_up
-- and case.reopened. Both are kept by the case-file consumer; existing cases get them from their timeline.
ALTER TABLE cases ADD COLUMN overdue BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE cases ADD COLUMN awaiting_follow_up BOOLEAN NOT NULL DEFAULT FALSE;

UPDATE cases c SET overdue = TRUE
WHERE c.state <> 'closed' AND EXISTS (
    SELECT 1 FROM timeline t WHERE t.case_id = c.id AND t.action = 'overdue'
      AND NOT EXISTS (SELECT 1 FROM timeline r WHERE r.case_id = c.id AND r.action IN ('reopened', 'closed')
                      AND (r.at, r.id) > (t.at, t.id)));

UPDATE cases c SET awaiting_follow_up = TRUE
WHERE c.state = 'closed' AND NOT EXISTS (
    SELECT 1 FROM timeline f WHERE f.case_id = c.id AND f.action = 'followed_up'
      AND (f.at, f.id) > (SELECT t.at, t.id FROM timeline t WHERE t.case_id = c.id AND t.action = 'closed'
                          ORDER BY t.at DESC, t.id DESC LIMIT 1));

-- The board is a subtree (a node on the area path), ordered overdue first then oldest.
CREATE INDEX cases_area_path ON cases USING GIN (area_path);
CREATE INDEX cases_board ON cases (state, (NOT overdue), registered_at, id);
