-- SPDX-License-Identifier: AGPL-3.0-or-later
-- The HEP agent that delivered a record's INVITE to a collecting sensor (--hep-listen): its
-- capture agent id (HEP chunk 0x0c, an unsigned 32-bit number) and node name (chunk 0x13).
-- Null for calls the sensor captured itself.

ALTER TABLE cdr ADD COLUMN agent_id bigint CHECK (agent_id BETWEEN 0 AND 4294967295);
ALTER TABLE cdr ADD COLUMN agent_name text;

COMMENT ON COLUMN cdr.agent_id IS 'spycraft: HEP capture agent id of the agent that delivered the INVITE';
COMMENT ON COLUMN cdr.agent_name IS 'spycraft: HEP node name of the agent that delivered the INVITE';
