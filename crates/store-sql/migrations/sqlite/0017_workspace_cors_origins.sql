-- A workspace's own CORS list (`cabinet admin set-cors`), for the routes that name the workspace
-- without a credential (signed storage URLs, public URLs): `*`, `none`, or origins
-- comma-separated. NULL: the server's `--cors-origins` applies.
ALTER TABLE workspaces ADD COLUMN cors_origins TEXT;
