-- SPDX-License-Identifier: AGPL-3.0-or-later
-- The call model's additions. RFC 6076 session disconnect delay (BYE to its final response),
-- call setup time (INVITE to answer) and time on hold, in milliseconds, null where they do not apply (no BYE answered; a call
-- never answered); the dialogs a forked INVITE created besides the record's, and the last
-- status one of them had; the transfer a call asked for (REFER) and the one that made it.
ALTER TABLE cdr ADD COLUMN sdd_ms bigint;
ALTER TABLE cdr ADD COLUMN setup_ms bigint;
ALTER TABLE cdr ADD COLUMN hold_ms bigint;
ALTER TABLE cdr ADD COLUMN forked_dialogs integer NOT NULL DEFAULT 0;
ALTER TABLE cdr ADD COLUMN forked_last_status smallint;
ALTER TABLE cdr ADD COLUMN transfer_at timestamptz;
ALTER TABLE cdr ADD COLUMN transferred_by text CHECK (transferred_by IN ('caller', 'callee'));
ALTER TABLE cdr ADD COLUMN transfer_to text;
ALTER TABLE cdr ADD COLUMN transfer_status smallint;
ALTER TABLE cdr ADD COLUMN referred_by text;
ALTER TABLE cdr ADD COLUMN transferred_from text;
CREATE INDEX cdr_by_transferred_from ON cdr (transferred_from)
    WHERE transferred_from IS NOT NULL;
