-- name: console_operator_insert
insert into console_operators (username, password_hash, role) values ($1, $2, $3)
on conflict (username) do nothing returning id;

-- name: console_operator_of
select id, username, password_hash, role, disabled, created_at from console_operators where username = $1;

-- name: console_operator_list
select id, username, password_hash, role, disabled, created_at from console_operators order by id;

-- name: console_operator_set
update console_operators set role = $2, disabled = $3 where username = $1 returning id;

-- name: enterprise_search
-- enterprises by a part of their name or of one of their prefixes ($1, a LIKE pattern), or by their
-- credit code ($2)
select e.id, e.name, e.credit_code, e.contact_name, e.contact_phone, e.contact_email, e.created_at
from enterprises e
where e.name ilike $1 escape '\' or e.credit_code = $2
   or exists (select 1 from enterprise_prefixes p where p.enterprise_id = e.id and p.prefix like $1 escape '\')
order by e.id limit $3;
