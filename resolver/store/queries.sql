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
