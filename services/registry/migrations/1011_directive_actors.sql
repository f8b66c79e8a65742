-- Who issued, acknowledged and answered a directive: the signed-in caller's actor id (a person id, else the
-- client's or service's subject), taken from the verified token and never from the request. Rows written
-- before sign-in existed keep ''.
ALTER TABLE directives ADD COLUMN issued_by TEXT NOT NULL DEFAULT '';
ALTER TABLE directive_recipients
    ADD COLUMN acknowledged_by TEXT NOT NULL DEFAULT '',
    ADD COLUMN answered_by     TEXT NOT NULL DEFAULT '';
