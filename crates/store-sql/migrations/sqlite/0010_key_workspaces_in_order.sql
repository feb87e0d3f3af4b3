-- A key's workspaces in their order, read by every authenticated request: without it the lookup
-- sorted the key's rows in a temporary b-tree each time.
CREATE INDEX api_key_workspaces_in_order ON api_key_workspaces (key_id, position);
