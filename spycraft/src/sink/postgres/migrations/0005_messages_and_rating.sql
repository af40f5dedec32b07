-- SPDX-License-Identifier: AGPL-3.0-or-later
-- The SIP messages of each call, written by sensors run with --store-messages, so that
-- `spycraft serve --postgres` can show the ladders, messages and pcaps of past calls; and the
-- price each record got from its sensor's rate deck (--rates).
--
-- A message's digest is an FNV-1a hash of its capture time, addresses, ports and bytes: the
-- same message stored twice (a replayed capture, two sensors on one mirror) is one row.
-- Partitioned by day of capture time like cdr, and dropped with it by the same retention.

CREATE TABLE sip_message (
    digest      bigint      NOT NULL,
    captured_at timestamptz NOT NULL,
    node        text        NOT NULL,
    call_id     text        NOT NULL,
    src_ip      inet        NOT NULL,
    src_port    integer     NOT NULL CHECK (src_port BETWEEN 0 AND 65535),
    dst_ip      inet        NOT NULL,
    dst_port    integer     NOT NULL CHECK (dst_port BETWEEN 0 AND 65535),
    transport   text        NOT NULL
        CHECK (transport IN ('udp', 'tcp', 'tls', 'ws', 'sctp')),
    raw         bytea       NOT NULL,
    PRIMARY KEY (digest, captured_at)
) PARTITION BY RANGE (captured_at);

COMMENT ON TABLE sip_message IS 'spycraft: the SIP messages of calls, as they travelled (--store-messages)';

CREATE INDEX sip_message_by_call_id ON sip_message (call_id, captured_at);

CREATE FUNCTION spycraft_ensure_sip_message_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part text := 'sip_message_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('spycraft.sip_message_partitions'));
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF sip_message FOR VALUES FROM (%L) TO (%L)',
                   part, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
    RETURN true;
END $$;

CREATE FUNCTION spycraft_drop_sip_message_partitions_before(cutoff date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    dropped integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('spycraft.sip_message_partitions'));
    FOR r IN
        SELECT c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'sip_message'::regclass
          AND c.relname ~ '^sip_message_p[0-9]{8}$'
          AND to_date(substr(c.relname, 14), 'YYYYMMDD') < cutoff
    LOOP
        EXECUTE format('DROP TABLE %I', r.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END $$;

-- The rate deck's prefix that priced the record and its cost (six decimals, as the deck's
-- prices); null without a deck or when no prefix matched.
ALTER TABLE cdr ADD COLUMN rated_prefix text;
ALTER TABLE cdr ADD COLUMN cost numeric(18, 6);
