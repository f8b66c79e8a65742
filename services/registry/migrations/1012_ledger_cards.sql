-- Graded supervision in the ledger (issue 9): the yellow (黄牌) and red (红牌) cards issued on the cases of
-- each node, from case.supervised. Cards are history, not state: they only ever count up, and a closed or
-- reopened case keeps the cards it had.
ALTER TABLE ledger_counts
    ADD COLUMN yellow_count BIGINT NOT NULL DEFAULT 0 CHECK (yellow_count >= 0),
    ADD COLUMN red_count    BIGINT NOT NULL DEFAULT 0 CHECK (red_count >= 0);
