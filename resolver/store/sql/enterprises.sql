-- Enterprises, their prefixes and users, and the audit trail (the operator's work).

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
select prefix, display, state, updated_at, review_note from enterprise_prefixes where enterprise_id = $1 order by prefix;

-- name: prefixes_in_review
-- the operator's review queue: prefixes awaiting review (4) or under review (5), oldest first
select p.prefix, p.display, p.state, p.updated_at, e.id, e.name, e.credit_code, e.contact_name, e.contact_phone
from enterprise_prefixes p join enterprises e on e.id = p.enterprise_id
where p.state in (4, 5) order by p.updated_at, p.prefix limit $1;

-- name: prefix_state_of
select state from enterprise_prefixes where prefix = $1;

-- name: prefix_set_review_note
update enterprise_prefixes set review_note = $2 where prefix = $1;

-- name: prefix_allocation_lock
-- one allocation at a time (1346456396 names the node's prefix allocations, 'PALC'): the overlap
-- check below reads at READ COMMITTED, so two concurrent ones could each miss the other's row
select pg_advisory_xact_lock(1346456396);

-- name: prefix_has_handles
-- whether handles already live under exactly this prefix, or its prefix handle exists
select exists (select 1 from handles where prefix = $1) or exists (select 1 from handles where key = '0.na/' || $1);

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

-- name: prefix_set_signed
update enterprise_prefixes set signed = $2, updated_at = now() where prefix = $1;

-- name: prefix_signed
select signed from enterprise_prefixes where prefix = $1;

-- name: user_insert
insert into enterprise_users (enterprise_id, username, password_hash) values ($1, $2, $3) returning id;

-- name: user_update
-- $5: 1 when the change voids the user's tokens (a new password, disabled), else 0
update enterprise_users set password_hash = coalesce($2, password_hash), disabled = coalesce($3, disabled),
    token_generation = token_generation + $5
where id = $1 and enterprise_id = $4 returning id;

-- name: user_delete
delete from enterprise_users where id = $1 and enterprise_id = $2 returning id, username;

-- name: users_of
select id, username, disabled, created_at from enterprise_users where enterprise_id = $1 order by id;

-- name: audit_query
select id, at, actor, enterprise_id, operation, handle, before::text, after::text, detail::text, request_id, client
from audit
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

-- name: enterprise_prefix_all
select prefix, state, enterprise_id, signed from enterprise_prefixes;
