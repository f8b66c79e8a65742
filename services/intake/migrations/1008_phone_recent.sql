-- The phone blind index, newest first (issue 7). A likely-duplicate search looks for earlier cases with the
-- same phone within a window around the new case's registration; on the bare (phone_index) index a phone on
-- many cases (a habitual caller, a hotline's own number) made each registration read every one of them. With
-- the registration time beside it, the search reads the newest few inside the window and stops.
ALTER TABLE case_parties ADD COLUMN registered_at TIMESTAMPTZ;
UPDATE case_parties p SET registered_at = c.registered_at FROM cases c WHERE c.id = p.case_id;
ALTER TABLE case_parties ALTER COLUMN registered_at SET NOT NULL;
DROP INDEX case_parties_phone_index;
CREATE INDEX case_parties_phone_recent ON case_parties (phone_index, registered_at DESC, case_id)
    WHERE phone_index IS NOT NULL;
