-- Name search scoped by workspace inside the index, so that what one workspace's search costs does
-- not depend on the names in any other. The shared pg_trgm index listed every workspace's rows
-- under each trigram, and a search read them all before dropping the others'; now each name's
-- trigrams are indexed as keys prefixed by its workspace (`ws_…:abc`), so a search reads only its
-- own workspace's lists, and the LIKE beside it checks the matches. Built from the existing rows.
DROP INDEX files_name_trgm;
DROP INDEX folders_name_trgm;

-- Not inlined by the planner (its body holds a subquery), so queries match the indexed expression;
-- repeated keys are left in (GIN keeps each once).
-- Costly per row (tens of µs): its COST tells the planner to read the index rather than call it
-- on every row of a scan, and to check a row's LIKE first.
CREATE FUNCTION name_trigram_keys(workspace_id TEXT, name_folded TEXT) RETURNS TEXT[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE COST 1000
    AS $$ SELECT ARRAY(SELECT workspace_id || ':' || substr(name_folded, i, 3)
                       FROM generate_series(1, char_length(name_folded) - 2) AS i) $$;

-- Without fastupdate: a GIN pending list is shared by every workspace and read whole by every
-- search until it is merged, which would make a search's cost follow other workspaces' writes.
CREATE INDEX files_name_keys ON files USING gin (name_trigram_keys(workspace_id, name_folded)) WITH (fastupdate = off);
CREATE INDEX folders_name_keys ON folders USING gin (name_trigram_keys(workspace_id, name_folded)) WITH (fastupdate = off);
