-- The event backbone at scale: parked events (retries and dead letters), leases that keep one replica on each
-- partition and on the relay, and the indexes retention prunes by.

-- An event a consumer accepted (its inbox row is written) but has not applied: it failed and waits for a retry,
-- it waits behind an earlier failed event of the same case (a case's events apply in order), or an operator
-- asked for it to be applied again (a replay). `dead` marks one that used up its attempts: its case stops in
-- this consumer until an operator retries or discards it; other cases flow on.
CREATE TABLE parked_event (
    consumer   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    case_id    TEXT NOT NULL,
    stream_seq BIGINT NOT NULL,
    subject    TEXT NOT NULL,
    payload    BYTEA NOT NULL,
    attempts   INT NOT NULL DEFAULT 0,
    next_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error TEXT NOT NULL DEFAULT '',
    dead       BOOLEAN NOT NULL DEFAULT false,
    parked_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX parked_event_by_case ON parked_event (consumer, case_id, stream_seq);

-- Who works a partition (or the relay) now. A holder renews `until` in the same transaction as its effects, so
-- a replica whose lease was taken over cannot commit anything more.
CREATE TABLE event_lease (
    name   TEXT NOT NULL,
    part   INT NOT NULL,
    holder UUID NOT NULL,
    until  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, part)
);

CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX inbox_by_age ON inbox (handled_at);
