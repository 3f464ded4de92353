-- The pending challenges of native administration (schema/0012, resolver/store/challenges.py).

-- name: native_challenge_put
insert into native_challenges (session_id, address, nonce, request, expires_at)
values ($1, $2, $3, $4, to_timestamp($5)) on conflict (session_id) do nothing;

-- name: native_challenge_take
delete from native_challenges where session_id = $1 and address = $2 and expires_at > now()
returning nonce, request;

-- name: native_challenges_sweep
delete from native_challenges where expires_at <= now();
