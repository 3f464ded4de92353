-- Every statement the node runs. Text is constant per call site so asyncpg's statement cache works.

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

-- name: notify
select pg_notify($1, $2);

-- name: notify_many
select pg_notify($1, payload) from unnest($2::text[]) as payload;

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
-- rows are locked in key order first, so concurrent batches cannot deadlock
with doomed as (select key from handles where key = any($1::text[]) order by key for update)
delete from handles h using doomed where h.key = doomed.key returning h.key, h.handle, h.vals::text;

-- name: audit_many
insert into audit (actor, enterprise_id, operation, handle, before, after, detail)
select * from unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::json[], $6::json[], $7::json[]);

-- name: terms_delete
-- each row found by search_terms_prefix_term (a term's prefix is its key's)
delete from search_terms s using unnest($1::text[], $2::text[]) as d (term, key)
where s.prefix = split_part(d.key, '/', 1) and s.term = d.term and s.key = d.key;

-- name: terms_insert
insert into search_terms (term, key, prefix)
select * from unnest($1::text[], $2::text[], $3::text[]);

-- name: prefix_info
select prefix, state, enterprise_id from enterprise_prefixes where prefix = any($1::text[]);

-- name: templates_for
select prefix, version, industry_codes, items::text from templates
where prefix = any($1::text[]) and version = any($2::text[]);

-- name: enterprise_insert
insert into enterprises (name, credit_code, contact_name, contact_phone, contact_email)
values ($1, $2, $3, $4, $5) returning id, created_at;

-- name: enterprise_get
select id, name, credit_code, contact_name, contact_phone, contact_email, created_at
from enterprises where id = $1;

-- name: enterprise_list
select id, name, credit_code, contact_name, contact_phone, contact_email, created_at
from enterprises order by id offset $1 limit $2;

-- name: enterprise_count
select count(*) from enterprises;

-- name: enterprise_prefixes
select prefix, display, state, updated_at from enterprise_prefixes where enterprise_id = $1 order by prefix;

-- name: prefix_overlapping
select prefix, enterprise_id from enterprise_prefixes
where prefix = $1 or $1 like replace(replace(prefix, '_', '\_'), '%', '\%') || '.%'
   or prefix like replace(replace($1, '_', '\_'), '%', '\%') || '.%';

-- name: prefix_insert
insert into enterprise_prefixes (prefix, display, enterprise_id, state) values ($1, $2, $3, $4);

-- name: prefix_lock
select prefix, display, enterprise_id, state from enterprise_prefixes where prefix = $1 for update;

-- name: prefix_set_state
update enterprise_prefixes set state = $2, updated_at = now() where prefix = $1;

-- name: user_insert
insert into enterprise_users (enterprise_id, username, password_hash) values ($1, $2, $3) returning id;

-- name: user_by_name
select id, enterprise_id, username, password_hash, disabled, token_generation from enterprise_users
where username = $1;

-- name: user_token_state
-- what decides whether a user's tokens are accepted: the account, and its tokens ended by a logout
select enterprise_id, disabled, token_generation,
       array(select r.digest from revoked_tokens r
             where r.user_id = u.id and r.generation = u.token_generation and r.expires_at > now()) as revoked
from enterprise_users u where id = $1;

-- name: user_update
-- $5: 1 when the change voids the user's tokens (a new password, disabled), else 0
update enterprise_users set password_hash = coalesce($2, password_hash), disabled = coalesce($3, disabled),
    token_generation = token_generation + $5
where id = $1 and enterprise_id = $4 returning id;

-- name: user_revoke_tokens
update enterprise_users set token_generation = token_generation + 1
where id = $1 and enterprise_id = $2 returning id, username;

-- name: user_delete
delete from enterprise_users where id = $1 and enterprise_id = $2 returning id, username;

-- name: token_owner_lock
select enterprise_id, username, token_generation from enterprise_users where id = $1 for update;

-- name: token_revocations_prune
-- a user's logged-out tokens that expired or belong to an earlier generation are void anyway
delete from revoked_tokens where user_id = $1 and (expires_at <= now() or generation <> $2);

-- name: token_revocations_count
select count(*) from revoked_tokens where user_id = $1;

-- name: token_revoke
insert into revoked_tokens (user_id, generation, digest, expires_at) values ($1, $2, $3, to_timestamp($4))
on conflict (user_id, digest) do nothing;

-- name: users_of
select id, username, disabled, created_at from enterprise_users where enterprise_id = $1 order by id;

-- name: node_key_ensure
insert into node_keys (name, secret) values ($1, $2) on conflict (name) do nothing;

-- name: node_key_get
select secret from node_keys where name = $1;

-- name: template_insert
insert into templates (prefix, version, industry_codes, items) values ($1, $2, $3, $4::jsonb)
on conflict (prefix, version) do nothing returning version;

-- name: template_lock
select prefix, version, industry_codes, items::text from templates where prefix = $1 and version = $2 for update;

-- name: template_update
update templates set industry_codes = $3, items = $4::jsonb, updated_at = now() where prefix = $1 and version = $2;

-- name: templates_list
select prefix, version, industry_codes, items::text from templates
where prefix = any($1::text[]) order by prefix desc, version;

-- name: audit_query
select id, at, actor, enterprise_id, operation, handle, before::text, after::text, detail::text from audit
where ($1::text is null or handle = $1)
  and ($2::bigint is null or enterprise_id = $2)
  and ($3::timestamptz is null or at >= $3)
  and ($4::timestamptz is null or at < $4)
order by id desc offset $5 limit $6;

-- name: audit_count
select count(*) from audit
where ($1::text is null or handle = $1)
  and ($2::bigint is null or enterprise_id = $2)
  and ($3::timestamptz is null or at >= $3)
  and ($4::timestamptz is null or at < $4);

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
select prefix, state, enterprise_id from enterprise_prefixes where prefix = any($1::text[]);

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

-- name: import_progress
update imports set rows_done = $2, accepted = $3, rejected = $4, finished = $5, updated_at = now() where digest = $1;

-- name: export_prefix
select handle, vals::text from handles where prefix = $1 order by key;

-- name: enterprise_prefix_all
select prefix, state, enterprise_id from enterprise_prefixes;

-- name: templates_all
select prefix, version, industry_codes, items::text from templates;

-- name: daily_add
insert into daily_counts (day, prefix, registrations, resolutions, not_found)
select * from unnest($1::date[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
on conflict (day, prefix) do update set
    registrations = daily_counts.registrations + excluded.registrations,
    resolutions = daily_counts.resolutions + excluded.resolutions,
    not_found = daily_counts.not_found + excluded.not_found;

-- name: daily_range
select prefix, sum(registrations), sum(resolutions), sum(not_found) from daily_counts
where day >= $1 and day <= $2 group by prefix order by prefix;

-- name: daily_fold_unserved
-- rows of prefixes the node does not serve ($1 the node prefix, $2 the row of the others, $3 the
-- prefix of prefix records) moved where resolver.stats.ServedPrefixes.label puts them: the nearest
-- allocated prefix above; else registrations and resolutions to the node prefix (out of its scope:
-- dropped), not-found answers to $2
with moved as (
    delete from daily_counts d
    where d.prefix <> $1 and d.prefix <> $2
        and not exists (select 1 from enterprise_prefixes e where e.prefix = d.prefix)
    returning d.day, d.prefix, d.registrations, d.resolutions, d.not_found
), labelled as (
    select m.day, m.registrations, m.resolutions, m.not_found,
        (select e.prefix from enterprise_prefixes e where starts_with(m.prefix, e.prefix || '.')
         order by length(e.prefix) desc limit 1) as owner,
        m.prefix = $3 or starts_with(m.prefix, $1 || '.') as here
    from moved m
), parts as (
    select day, coalesce(owner, case when here then $1 end) as prefix, registrations, resolutions,
        0::bigint as not_found
    from labelled where registrations <> 0 or resolutions <> 0
    union all
    select day, coalesce(owner, $2), 0::bigint, 0::bigint, not_found from labelled where not_found <> 0
)
insert into daily_counts (day, prefix, registrations, resolutions, not_found)
select day, prefix, sum(registrations), sum(resolutions), sum(not_found) from parts
where prefix is not null group by day, prefix
on conflict (day, prefix) do update set
    registrations = daily_counts.registrations + excluded.registrations,
    resolutions = daily_counts.resolutions + excluded.resolutions,
    not_found = daily_counts.not_found + excluded.not_found;

-- name: created_per_day
select prefix, count(*) from handles
where (created_at at time zone 'UTC')::date = $1 and prefix <> '0.na'
group by prefix order by prefix;

-- name: registered_per_day
select prefix, registrations from daily_counts where day = $1 order by prefix;

-- name: identifiers_estimate
select greatest(reltuples, 0)::bigint from pg_class where relname = 'handles';

-- name: analyze_handles
analyze handles;

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

-- name: day_counts
select prefix, registrations, resolutions, not_found from daily_counts where day = $1 order by prefix;

-- name: counted_days
select distinct day from daily_counts where day >= $1 order by day;

-- name: enabled_prefixes
select prefix, display from enterprise_prefixes where state = 1 order by prefix;

-- name: upstream_try_lock
select pg_try_advisory_lock(726931);

-- name: handle_times
select created_at, updated_at from handles where key = $1;

-- name: import_chunk_done
insert into import_chunks (digest, first_line, last_line, accepted, rejected) values ($1, $2, $3, $4, $5);

-- name: import_chunks_of
select first_line, last_line, accepted, rejected from import_chunks where digest = $1 order by first_line;

-- name: import_finish
update imports set rows_done = $2, accepted = $3, rejected = $4, finished = true, updated_at = now()
where digest = $1;
