-- Enterprise users' credentials and tokens, and the node's signing key.

-- name: user_by_name
select id, enterprise_id, username, password_hash, disabled, token_generation from enterprise_users
where username = $1;

-- name: user_token_state
-- what decides whether a user's tokens are accepted: the account, and its tokens ended by a logout
select enterprise_id, disabled, token_generation,
       array(select r.digest from revoked_tokens r
             where r.user_id = u.id and r.generation = u.token_generation and r.expires_at > now()) as revoked
from enterprise_users u where id = $1;

-- name: user_revoke_tokens
update enterprise_users set token_generation = token_generation + 1
where id = $1 and enterprise_id = $2 returning id, username;

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

-- name: node_key_ensure
insert into node_keys (name, secret) values ($1, $2) on conflict (name) do nothing;

-- name: node_key_get
select secret from node_keys where name = $1;
