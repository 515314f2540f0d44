-- The console's Activity page (docs/console.md): what an actor did, newest first. Every event
-- records its actor in its metadata; without an index, the events of one actor (a key used a
-- few times a day) are found by walking the whole log from its newest event. One entry per
-- event, in actor then position order: an actor's events are one index range, walked from its
-- newest, and an older page starts where the last one ended (docs/benchmarks.md, "flowlog
-- bench activity": what it costs appends, and what it saves the page).
--
-- No tenant column: an event's tenant is its stream's (a flow's, a schedule's, a definition
-- owner's), looked up by primary key for each event the page shows, so nothing new is
-- written per append and no event can carry a tenant that disagrees with its stream.
CREATE INDEX events_actor_idx ON events ((metadata ->> 'actor'), position);

-- The tenant an event belongs to: its stream's. A flow's events are its flow's tenant's (in
-- the projection, or archived_flows once it is sealed for an archive), a schedule's its
-- schedule's, a definition's its owner's (the tenant of the name's first version: NULL for a
-- definition from code, '' for one shared by an open server). Any other stream (an archive
-- run's, say) belongs to no tenant: NULL, seen only by a viewer of every tenant. A tenant's
-- viewer is shown only events for which this equals its tenant, so a stream kind this does
-- not know is hidden from tenants, never shown to the wrong one.
CREATE FUNCTION event_tenant(stream text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
-- A quoted body, not a standard one: a standard body would make the tables depend on it, and
-- rebuild and import replace them.
AS $$
SELECT CASE
    WHEN starts_with(stream, 'flow-') THEN coalesce(
        (SELECT w.tenant_id FROM workflows w WHERE w.id = substr(stream, 6)),
        (SELECT a.tenant_id FROM archived_flows a WHERE a.flow_id = substr(stream, 6)))
    WHEN starts_with(stream, 'schedule-') THEN
        (SELECT s.tenant_id FROM schedules s WHERE s.id = substr(stream, 10))
    WHEN starts_with(stream, 'definition-') THEN
        (SELECT d.tenant_id FROM workflow_definitions d WHERE d.name = substr(stream, 12)
         ORDER BY d.registered_at LIMIT 1)
    -- A key's events are its tenant's; a refusal's stream names its tenant in hex (app/access/
    -- events.py: no name can pass for another's); a failed log-in's names none.
    WHEN starts_with(stream, 'key-') THEN
        (SELECT k.tenant_id FROM api_keys k WHERE k.id = substr(stream, 5))
    WHEN starts_with(stream, 'refusals-') THEN
        nullif(convert_from(decode(split_part(substr(stream, 10), '/', 1), 'hex'), 'UTF8'), '')
END
$$;
