-- The tree ledger's counters, sharded by the case's event partition (issue 7). Every case counts at the same
-- top nodes (county, prefecture, province), so one counter row per node made every consumer batch that
-- touched a case queue on the same rows until it committed: the registry's partitions applied one batch at a
-- time. A case now counts in the shard of its own partition, which only that partition's consumer writes; a
-- node's count is the sum of its shards.
--
-- A case keeps the shard it was counted in: cases counted before this migration stay in shard 0, where their
-- counts are, so a later close or reopen moves the same rows it added to.
ALTER TABLE ledger_cases ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE ledger_counts ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE ledger_counts DROP CONSTRAINT ledger_counts_pkey;
ALTER TABLE ledger_counts ADD PRIMARY KEY (code, kind_class, shard);
