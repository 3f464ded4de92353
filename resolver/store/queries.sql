-- Every statement the node runs. Text is constant per call site so asyncpg's statement cache works.

-- name: fetch_many
select key, handle, vals::text from handles where key = any($1::text[]);

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

-- name: notify
select pg_notify($1, $2);

-- name: schema_version
select coalesce(max(version), 0) from schema_migrations;

-- name: insert_many
insert into handles (key, handle, prefix, vals)
select * from unnest($1::text[], $2::text[], $3::text[], $4::json[])
on conflict (key) do nothing
returning key;

-- name: lock_many
select key, handle, vals::text from handles where key = any($1::text[]) order by key for update;

-- name: update_many
update handles h set vals = u.vals, updated_at = now()
from unnest($1::text[], $2::json[]) as u (key, vals)
where h.key = u.key;

-- name: delete_many
delete from handles where key = any($1::text[]) returning key, handle, vals::text;

-- name: audit_many
insert into audit (actor, enterprise_id, operation, handle, before, after, detail)
select * from unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::json[], $6::json[], $7::json[]);

-- name: terms_delete
delete from search_terms where key = any($1::text[]);

-- name: terms_insert
insert into search_terms (term, key, prefix)
select * from unnest($1::text[], $2::text[], $3::text[])
on conflict do nothing;

-- name: prefix_info
select prefix, state, enterprise_id from enterprise_prefixes where prefix = any($1::text[]);

-- name: templates_for
select prefix, version, industry_codes, items::text from templates
where prefix = any($1::text[]) and version = any($2::text[]);
