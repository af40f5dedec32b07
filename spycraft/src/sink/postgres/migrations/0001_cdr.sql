-- SPDX-License-Identifier: AGPL-3.0-or-later
-- The CDR contract (DESIGN.md) as typed columns, one row per call leg, partitioned by day of
-- invite_at. Enumerations are checked text, so a later migration can widen them in place.

CREATE TABLE cdr (
    id                     uuid        NOT NULL,
    node                   text        NOT NULL,
    call_id                text        NOT NULL,
    from_tag               text        NOT NULL,
    to_tag                 text,
    collation_id           text        NOT NULL,
    from_uri               text        NOT NULL,
    from_user              text,
    to_uri                 text        NOT NULL,
    to_user                text,
    request_uri            text        NOT NULL,
    p_asserted_identity    text,
    diversion              text,
    caller_ip              inet        NOT NULL,
    caller_port            integer     NOT NULL CHECK (caller_port BETWEEN 0 AND 65535),
    callee_ip              inet        NOT NULL,
    callee_port            integer     NOT NULL CHECK (callee_port BETWEEN 0 AND 65535),
    transport              text        NOT NULL
        CONSTRAINT cdr_transport_check CHECK (transport IN ('udp', 'tcp', 'tls', 'ws', 'sctp')),
    vlan                   integer     CHECK (vlan BETWEEN 0 AND 4095),
    direction              text        NOT NULL
        CONSTRAINT cdr_direction_check
        CHECK (direction IN ('inbound', 'outbound', 'internal', 'transit', 'unknown')),
    user_agent             text,
    server                 text,
    invite_at              timestamptz NOT NULL,
    ring_at                timestamptz,
    answer_at              timestamptz,
    end_at                 timestamptz,
    duration_ms            bigint,
    billable_ms            bigint,
    pdd_ms                 bigint,
    disposition            text        NOT NULL
        CONSTRAINT cdr_disposition_check
        CHECK (disposition IN ('answered', 'busy', 'no_answer', 'cancelled', 'congestion', 'failed')),
    final_status           smallint,
    final_reason           text,
    q850_cause             smallint,
    ended_by               text        NOT NULL
        CONSTRAINT cdr_ended_by_check CHECK (ended_by IN ('caller', 'callee', 'timeout', 'unknown')),
    end_reason             text        NOT NULL
        CONSTRAINT cdr_end_reason_check
        CHECK (end_reason IN ('bye', 'cancel', 'rejected', 'timeout', 'incomplete')),
    auth_challenges        integer     NOT NULL DEFAULT 0,
    invite_retransmissions integer     NOT NULL DEFAULT 0,
    capture_issues         jsonb       NOT NULL DEFAULT '[]',
    -- When the database took the row: not part of the record, useful to operators.
    inserted_at            timestamptz NOT NULL DEFAULT now(),
    -- id is deterministic from node, Call-ID, From tag and INVITE time, so a replay of the
    -- same record conflicts here and is skipped. invite_at is in the key because the table
    -- is partitioned on it.
    PRIMARY KEY (id, invite_at)
) PARTITION BY RANGE (invite_at);

COMMENT ON TABLE cdr IS 'spycraft call detail records: one row per call leg (DESIGN.md, the CDR contract)';

CREATE INDEX cdr_by_time ON cdr (invite_at);
CREATE INDEX cdr_by_node ON cdr (node, invite_at);
CREATE INDEX cdr_by_collation ON cdr (collation_id);
CREATE INDEX cdr_by_call_id ON cdr (call_id);
CREATE INDEX cdr_by_from_user ON cdr (from_user, invite_at);
CREATE INDEX cdr_by_to_user ON cdr (to_user, invite_at);

-- Creates the partition for one UTC day unless it exists. Sensors call it before each batch;
-- the advisory lock makes concurrent creation by several sensors safe.
CREATE FUNCTION spycraft_ensure_cdr_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part text := 'cdr_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('spycraft.cdr_partitions'));
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF cdr FOR VALUES FROM (%L) TO (%L)',
                   part, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
    RETURN true;
END $$;

-- Retention: drops the daily partitions that end on or before `cutoff`; returns how many.
CREATE FUNCTION spycraft_drop_cdr_partitions_before(cutoff date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    dropped integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('spycraft.cdr_partitions'));
    FOR r IN
        SELECT c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'cdr'::regclass
          AND c.relname ~ '^cdr_p[0-9]{8}$'
          AND to_date(substr(c.relname, 6), 'YYYYMMDD') < cutoff
    LOOP
        EXECUTE format('DROP TABLE %I', r.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END $$;

-- Periodic snapshots of each sensor's counters (frames, parse errors, calls, losses...).
CREATE TABLE sensor_stats (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node     text        NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now(),
    source   text        NOT NULL,
    counters jsonb       NOT NULL
);

CREATE INDEX sensor_stats_by_node ON sensor_stats (node, taken_at);
