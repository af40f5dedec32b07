-- SPDX-License-Identifier: AGPL-3.0-or-later
-- The call model's additions. RFC 6076 session disconnect delay (BYE to its final response)
-- and time on hold, in milliseconds, null where they do not apply (no BYE answered; a call
-- never answered); the dialogs a forked INVITE created besides the record's, and the last
-- status one of them had.
ALTER TABLE cdr ADD COLUMN sdd_ms bigint;
ALTER TABLE cdr ADD COLUMN hold_ms bigint;
ALTER TABLE cdr ADD COLUMN forked_dialogs integer NOT NULL DEFAULT 0;
ALTER TABLE cdr ADD COLUMN forked_last_status smallint;
