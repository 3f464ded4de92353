-- The outbox to the national top-level node and what it reports.

-- name: outbox_add
insert into outbox (message_id, lane, kind, ref, body) values ($1, $2, $3, $4, $5)
on conflict (kind, ref) where ref is not null do nothing;

-- name: outbox_next
-- the oldest undelivered message of each lane, when its time has come
select id, message_id::text, lane, kind, body::text, attempts from (
    select distinct on (lane) id, message_id, lane, kind, body, attempts, next_attempt from outbox
    where delivered_at is null order by lane, id
) first where next_attempt <= now() order by id limit $1;

-- name: outbox_delivered
update outbox set delivered_at = now(), attempts = attempts + 1, last_error = null where id = $1;

-- name: outbox_failed
update outbox set attempts = attempts + 1, last_error = $2,
    next_attempt = now() + make_interval(secs => $3) where id = $1;

-- name: outbox_status
select count(*) filter (where delivered_at is null),
       coalesce(extract(epoch from now() - min(created_at) filter (where delivered_at is null)), 0),
       count(*) filter (where delivered_at is not null),
       max(delivered_at)
from outbox;

-- name: outbox_pending_list
select id, message_id::text, lane, kind, attempts, last_error, created_at, next_attempt from outbox
where delivered_at is null order by id limit $1;

-- name: days_to_report
-- closed days with counts (within the last week) whose statistics are not queued yet
select d::date from generate_series(
    greatest(coalesce((select min(day) from daily_counts), $1::date), $1::date - 7), $1::date - 1, interval '1 day'
) as d
where not exists (select 1 from outbox where kind = 'statistics' and ref = d::date::text)
order by 1;

-- name: enabled_prefixes
select prefix, display from enterprise_prefixes where state = 1 order by prefix;

-- name: upstream_try_lock
select pg_try_advisory_lock(726931);
