-- Least privilege (docs/eventstore.md, "Who can change the log"). The role that runs these
-- migrations owns every table, and an owner can always rewrite the log (disable its
-- triggers, drop them, replace their function, drop the table). The service therefore runs
-- as another role, the runtime role, granted here only what serving needs:
--   events: read, and insert the five columns an append writes; never transaction_id,
--           position or recorded_at, which only the server sets (defaults), so no client
--           can place an event elsewhere in the log's order or time;
--   subscriptions: read, register, advance;
--   the work, projection and idempotency tables: read and write rows (they are derived
--           state or bookkeeping, rebuilt from the log);
--   schema_migrations: read (a runtime process checks that the schema is current).
-- No UPDATE, DELETE or TRUNCATE on events, no DDL, no ownership. `flowlog migrate` calls
-- flowlog_grant_runtime for the runtime role after migrating; a migration that adds a table
-- replaces this function to cover it (tests/test_roles.py checks that every table is).

CREATE FUNCTION flowlog_grant_runtime(runtime name) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    EXECUTE format('GRANT SELECT ON events, schema_migrations TO %I', runtime);
    EXECUTE format(
        'GRANT INSERT (stream_id, version, type, data, metadata) ON events TO %I', runtime);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON subscriptions TO %I', runtime);
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON flow_work, workflows, workflow_nodes, '
        'workflow_counts, workflow_definitions, idempotency_keys TO %I', runtime);
END;
$$;

-- Gives table ``target`` every grant that ``source`` has (a rebuild's new projection tables
-- get the live ones' before the swap: the runtime roles', and any reporting role's too).
CREATE FUNCTION flowlog_copy_grants(source regclass, target regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    each record;
BEGIN
    FOR each IN
        SELECT a.privilege_type, a.grantee
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = source AND a.grantee <> c.relowner
    LOOP
        IF each.grantee = 0 THEN
            EXECUTE format('GRANT %s ON %s TO PUBLIC', each.privilege_type, target);
        ELSE
            EXECUTE format('GRANT %s ON %s TO %I', each.privilege_type, target,
                           (SELECT rolname FROM pg_roles WHERE oid = each.grantee));
        END IF;
    END LOOP;
END;
$$;

-- Only the owner grants (the functions run with the caller's rights, so another role
-- could grant nothing with them anyway).
REVOKE ALL ON FUNCTION flowlog_grant_runtime(name) FROM PUBLIC;
REVOKE ALL ON FUNCTION flowlog_copy_grants(regclass, regclass) FROM PUBLIC;
