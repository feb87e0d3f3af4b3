-- Every change to the rows each request on PostgreSQL would read (its key, its token's standing,
-- whether its workspace opens reading to the public) notifies `cabinet_cache`, in the changing
-- transaction and whoever the writer is (a node, the admin CLI, a statement by hand): with the
-- key's id when a key or its workspaces change, with the workspace's id when its token
-- revocations or access rules do, `*` when a table is emptied. Each node keeps those reads in
-- memory and forgets what a notice names, so a revocation reaches every node as it commits.
CREATE FUNCTION cache_entry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('cabinet_cache', '*');
    ELSIF TG_TABLE_NAME = 'api_keys' THEN
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('cabinet_cache', OLD.id);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('cabinet_cache', NEW.id);
        END IF;
    ELSIF TG_TABLE_NAME = 'api_key_workspaces' THEN
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('cabinet_cache', OLD.key_id);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('cabinet_cache', NEW.key_id);
        END IF;
    ELSE -- token_revocations, access_rules: by workspace
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('cabinet_cache', OLD.workspace_id);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('cabinet_cache', NEW.workspace_id);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE ON api_keys
FOR EACH ROW EXECUTE FUNCTION cache_entry_changed();
CREATE TRIGGER api_key_workspaces_changed AFTER INSERT OR UPDATE OR DELETE ON api_key_workspaces
FOR EACH ROW EXECUTE FUNCTION cache_entry_changed();
CREATE TRIGGER token_revocations_changed AFTER INSERT OR UPDATE OR DELETE ON token_revocations
FOR EACH ROW EXECUTE FUNCTION cache_entry_changed();
CREATE TRIGGER access_rules_changed AFTER INSERT OR UPDATE OR DELETE ON access_rules
FOR EACH ROW EXECUTE FUNCTION cache_entry_changed();
CREATE TRIGGER api_keys_emptied AFTER TRUNCATE ON api_keys
FOR EACH STATEMENT EXECUTE FUNCTION cache_entry_changed();
CREATE TRIGGER api_key_workspaces_emptied AFTER TRUNCATE ON api_key_workspaces
FOR EACH STATEMENT EXECUTE FUNCTION cache_entry_changed();
CREATE TRIGGER token_revocations_emptied AFTER TRUNCATE ON token_revocations
FOR EACH STATEMENT EXECUTE FUNCTION cache_entry_changed();
CREATE TRIGGER access_rules_emptied AFTER TRUNCATE ON access_rules
FOR EACH STATEMENT EXECUTE FUNCTION cache_entry_changed();
