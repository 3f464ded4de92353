-- Bulk import (staging, merge, resumable chunks) and export.

-- name: import_staging_create
create temporary table if not exists import_staging (
    key text not null, handle text not null, prefix text not null, vals json not null
) on commit delete rows;

-- name: import_merge
insert into handles (key, handle, prefix, vals)
select key, handle, prefix, vals from import_staging order by key
on conflict (key) do nothing
returning key;

-- name: import_conflicts
-- the stored values of staged rows that existed before
select key, vals::text from handles where key = any($1::text[]);

-- name: import_get
select digest, rows_done, accepted, rejected, finished from imports where digest = $1;

-- name: import_start
insert into imports (digest, path) values ($1, $2) on conflict (digest) do nothing;

-- name: export_prefix
select handle, vals::text from handles where prefix = $1 order by key;

-- name: analyze_handles
analyze handles;

-- name: import_chunk_done
insert into import_chunks (digest, first_line, last_line, accepted, rejected) values ($1, $2, $3, $4, $5);

-- name: import_chunks_of
select first_line, last_line, accepted, rejected from import_chunks where digest = $1 order by first_line;

-- name: import_finish
update imports set rows_done = $2, accepted = $3, rejected = $4, finished = true, updated_at = now()
where digest = $1;
