-- Definitions registered over REST belong to the tenant that registered their first version
-- (docs/workflows.md, "Definitions and tenants"): another tenant can neither see, start,
-- schedule nor change them. The owner is recorded in each DefinitionRegistered event
-- ("tenant"); this column is its projection, the first version's tenant:
--   NULL  a definition from code, shared by every tenant;
--   ''    a REST definition registered while the server was open (no tokens), or before
--         definitions had owners: shared by every tenant, changed only by an open server;
--   else  the tenant that owns the name.
ALTER TABLE workflow_definitions ADD COLUMN tenant_id text;

UPDATE workflow_definitions SET tenant_id = '' WHERE definition ? 'spec';

-- Whether a definition owned by `owner` is one that `tenant` may see and start (tenant NULL:
-- an open server, or the owner's own tools, see every definition).
CREATE FUNCTION definition_visible(owner text, tenant text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN tenant IS NULL OR owner IS NULL OR owner = '' OR owner = tenant;
