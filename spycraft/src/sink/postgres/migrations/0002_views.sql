-- SPDX-License-Identifier: AGPL-3.0-or-later
-- Views for the questions people ask: whole calls across sensors and B2BUAs, and Asterisk's
-- cdr table layout for billing tools that already read it.

-- One row per call: the legs that share a collation_id, from any sensor. The call's parties
-- and disposition are those of its first leg (the one the caller sent).
CREATE VIEW calls AS
SELECT
    collation_id,
    min(invite_at)                                         AS started_at,
    max(end_at)                                            AS ended_at,
    count(*)                                               AS leg_count,
    array_agg(DISTINCT node ORDER BY node)                 AS nodes,
    (array_agg(from_user ORDER BY invite_at, node))[1]     AS from_user,
    (array_agg(to_user ORDER BY invite_at, node))[1]       AS to_user,
    (array_agg(disposition ORDER BY invite_at, node))[1]   AS disposition,
    bool_or(disposition = 'answered')                      AS answered,
    max(billable_ms)                                       AS billable_ms,
    jsonb_agg(jsonb_build_object(
        'id', id, 'node', node, 'call_id', call_id,
        'caller', host(caller_ip) || ':' || caller_port,
        'callee', host(callee_ip) || ':' || callee_port,
        'invite_at', invite_at, 'disposition', disposition,
        'final_status', final_status, 'billable_ms', billable_ms
    ) ORDER BY invite_at, node)                            AS legs
FROM cdr
GROUP BY collation_id;

-- Asterisk's cdr table (cdr_pgsql / cdr_adaptive_odbc layout). Durations in completed
-- seconds (Asterisk's default); a cancelled call is NO ANSWER, as Asterisk writes it.
CREATE VIEW cdr_asterisk AS
SELECT
    invite_at                                              AS calldate,
    coalesce(from_user, from_uri)                          AS clid,
    coalesce(from_user, '')                                AS src,
    coalesce(to_user, '')                                  AS dst,
    node                                                   AS dcontext,
    'SIP/' || host(caller_ip) || ':' || caller_port        AS channel,
    'SIP/' || host(callee_ip) || ':' || callee_port        AS dstchannel,
    'Dial'                                                 AS lastapp,
    request_uri                                            AS lastdata,
    (coalesce(duration_ms, 0) / 1000)::integer             AS duration,
    (coalesce(billable_ms, 0) / 1000)::integer             AS billsec,
    CASE disposition
        WHEN 'answered'   THEN 'ANSWERED'
        WHEN 'busy'       THEN 'BUSY'
        WHEN 'no_answer'  THEN 'NO ANSWER'
        WHEN 'cancelled'  THEN 'NO ANSWER'
        WHEN 'congestion' THEN 'CONGESTION'
        ELSE 'FAILED'
    END                                                    AS disposition,
    3                                                      AS amaflags,
    ''::text                                               AS accountcode,
    id::text                                               AS uniqueid,
    concat_ws(' ', final_status, final_reason)             AS userfield,
    ''::text                                               AS peeraccount,
    collation_id                                           AS linkedid,
    0                                                      AS sequence
FROM cdr;
