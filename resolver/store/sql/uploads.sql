-- name: upload_insert
insert into portal_uploads (enterprise_id, username, file_name, format, total_rows)
values ($1, $2, $3, $4, $5) returning id;

-- name: upload_lock
-- one enterprise's uploads start one at a time (the check for a running one, then the insert)
select pg_advisory_xact_lock(1347769427, hashtext($1::bigint::text));

-- name: upload_running_of
-- an upload of the enterprise still being registered (heard from within the last $2 seconds)
select id from portal_uploads
where enterprise_id = $1 and state = 'running' and updated_at > now() - make_interval(secs => $2)
limit 1;

-- name: upload_touch
-- still running (a long chunk): heard from now
update portal_uploads set updated_at = now() where id = $1;

-- name: upload_progress
update portal_uploads set rows_done = $2, accepted = $3, rejected = $4, updated_at = now()
where id = $1;

-- name: upload_finish
update portal_uploads
set state = $2, rows_done = $3, accepted = $4, rejected = $5, message = $6, report = $7, updated_at = now()
where id = $1;

-- name: upload_of
-- an upload of this enterprise (none of another's)
select id, file_name, format, state, total_rows, rows_done, accepted, rejected, message,
       report is not null and rejected > 0, created_at, updated_at,
       state = 'running' and updated_at < now() - make_interval(secs => $3)
from portal_uploads where id = $1 and enterprise_id = $2;

-- name: upload_report
select report, format from portal_uploads where id = $1 and enterprise_id = $2;

-- name: uploads_of
select id, file_name, format, state, total_rows, rows_done, accepted, rejected, message,
       report is not null and rejected > 0, created_at, updated_at,
       state = 'running' and updated_at < now() - make_interval(secs => $3)
from portal_uploads where enterprise_id = $1 order by id desc limit $2;
