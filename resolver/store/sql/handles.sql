-- Handles: lookups, writes, reverse-lookup terms, audit and change notifications of a write.

-- name: fetch_many
select key, handle, vals::text from handles where key = any($1::text[]);

-- name: lookup_many
-- the resolution lookup: the key is the handle case-folded, so it need not travel back
select handle, vals::text from handles where key = any($1::text[]);

-- name: fetch_for_update
select key, handle, vals::text from handles where key = $1 for update;

-- name: insert
insert into handles (key, handle, prefix, vals) values ($1, $2, $3, $4::json)
on conflict (key) do nothing
returning key;

-- name: update
update handles set vals = $2::json, updated_at = now() where key = $1;

-- name: delete
delete from handles where key = $1 returning key;

-- name: list_page
select handle from handles where prefix = $1 order by key offset $2 limit $3;

-- name: count_prefix
select count(*) from handles where prefix = $1;

-- name: prefix_handles
select handle from handles where prefix = '0.na' order by key;

-- name: notify_many
select pg_notify($1, payload) from unnest($2::text[]) as payload;

-- name: notify_each
select pg_notify(channel, payload) from unnest($1::text[], $2::text[]) as t(channel, payload);

-- name: set_application_name
select set_config('application_name', $1, false);

-- name: replication_state
select current_setting('synchronous_standby_names'),
       current_setting('synchronous_commit'),
       coalesce(array_agg(sync_state::text) filter (where state = 'streaming'), '{}')
from pg_stat_replication;

-- name: feed_members
select pid from pg_stat_activity where application_name = $1 and datname = current_database();

-- name: schema_version
select coalesce(max(version), 0) from schema_migrations;

-- name: insert_many
insert into handles (key, handle, prefix, vals)
select * from unnest($1::text[], $2::text[], $3::text[], $4::json[])
on conflict (key) do nothing
returning key;

-- name: keys_under_prefix_after
-- a page of the handles directly under a prefix, in key order after $2 (re-signing walks them)
select key from handles where prefix = $1 and key > $2 order by prefix, key limit $3;

-- name: lock_many
select key, handle, vals::text from handles where key = any($1::text[]) order by key for update;

-- name: update_many
update handles h set vals = u.vals, updated_at = now()
from unnest($1::text[], $2::json[]) as u (key, vals)
where h.key = u.key;

-- name: delete_many
-- rows are locked in key order first, so concurrent batches cannot deadlock
with doomed as (select key from handles where key = any($1::text[]) order by key for update)
delete from handles h using doomed where h.key = doomed.key returning h.key, h.handle, h.vals::text;

-- name: audit_many
insert into audit (actor, enterprise_id, operation, handle, before, after, detail, request_id, client)
select * from unnest(
    $1::text[], $2::bigint[], $3::text[], $4::text[], $5::json[], $6::json[], $7::json[], $8::text[], $9::text[]
);

-- name: terms_delete
-- each row found by search_terms_prefix_term (a term's prefix is its key's)
delete from search_terms s using unnest($1::text[], $2::text[]) as d (term, key)
where s.prefix = split_part(d.key, '/', 1) and s.term = d.term and s.key = d.key;

-- name: terms_insert
insert into search_terms (term, key, prefix)
select * from unnest($1::text[], $2::text[], $3::text[]);

-- name: prefix_info
select prefix, state, enterprise_id, signed from enterprise_prefixes where prefix = any($1::text[]);

-- name: templates_for
select prefix, version, industry_codes, items::text from templates
where prefix = any($1::text[]) and version = any($2::text[]);

-- name: search_begin
-- In the search's read-only transaction: its deadline, and one of its tenant's $3 turns, held until
-- the transaction ends, whichever worker or instance holds the others (false: all are taken).
-- 1397052008 names the node's search locks ('SEAR'); $2 is the tenant.
select set_config('statement_timeout', $1, true) as deadline,
       exists (select 1 from generate_series(0, $3::int - 1) as turn
               where pg_try_advisory_xact_lock(1397052008, hashtext($2::text || ' ' || turn))) as admitted;

-- name: search
-- Reverse lookup (resolver/core/search.py): in each prefix searched ($1; null: every prefix, found
-- by a skip scan of the index), the first $8 + $9 terms from $2 up to $3 that are like $4 and
-- whose handle also has a term in each (low, high, like) of $5, $6, $7; all of it range reads of
-- search_terms_prefix_term in its order (term bytes, then key). One page of those, merged.
with recursive every (prefix) as (
    (select s.prefix from search_terms s order by s.prefix limit 1)
    union all
    select (select s.prefix from search_terms s where s.prefix > every.prefix order by s.prefix limit 1)
    from every where every.prefix is not null
), searched (prefix) as (
    select p.prefix from unnest($1::text[]) as p (prefix) where $1 is not null
    union all
    select every.prefix from every where $1 is null and every.prefix is not null
), found as (
    select m.term, m.key from searched
    cross join lateral (
        select t.term, t.key from search_terms t
        where t.prefix = searched.prefix and t.term ~>=~ $2::text and t.term ~<~ $3::text and t.term like $4::text
          and not exists (
              select 1 from unnest($5::text[], $6::text[], $7::text[]) as x (low, high, pattern)
              where not exists (
                  select 1 from search_terms o
                  where o.prefix = t.prefix and o.term ~>=~ x.low and o.term ~<~ x.high
                    and o.term like x.pattern and o.key = t.key))
        order by t.term using ~<~, t.key
        limit $8::bigint + $9::bigint
    ) m
    order by m.term using ~<~, m.key
    offset $8::bigint limit $9::bigint
)
select h.handle from found join handles h on h.key = found.key
order by found.term using ~<~, found.key;

-- name: prefix_info_read
select prefix, state, enterprise_id, signed from enterprise_prefixes where prefix = any($1::text[]);

-- name: scan_extras
-- What the scan page shows besides the record: the handle's times and its template's display names
-- ($2, $3: the template's prefix and version as load_templates chose them, or nulls).
select h.created_at, h.updated_at, t.name as template_name, t.name_en as template_name_en
from handles h left join templates t on t.prefix = $2 and t.version = $3
where h.key = $1;
