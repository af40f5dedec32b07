-- SPDX-License-Identifier: AGPL-3.0-or-later
-- The web API's number and user search: `q=4930` is lower(from_user) or lower(to_user)
-- LIKE '4930%'. text_pattern_ops lets a prefix LIKE seek the index whatever the database's
-- collation; invite_at after it narrows a day's or a week's window.
CREATE INDEX cdr_by_lower_from_user ON cdr (lower(from_user) text_pattern_ops, invite_at);
CREATE INDEX cdr_by_lower_to_user ON cdr (lower(to_user) text_pattern_ops, invite_at);
