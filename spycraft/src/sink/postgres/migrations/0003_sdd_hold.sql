-- SPDX-License-Identifier: AGPL-3.0-or-later
-- RFC 6076 session disconnect delay (BYE to its final response) and time on hold, both in
-- milliseconds; null where they do not apply (no BYE answered; a call never answered).
ALTER TABLE cdr ADD COLUMN sdd_ms bigint;
ALTER TABLE cdr ADD COLUMN hold_ms bigint;
