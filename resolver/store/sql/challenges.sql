-- The pending challenges of native administration (schema/0012, resolver/store/challenges.py).

-- name: native_challenge_put
insert into native_challenges (session_id, address, network, nonce, request, expires_at)
values ($1, $2, $3, $4, $5, to_timestamp($6)) on conflict (session_id) do nothing;

-- name: native_challenges_pending
-- the challenges waiting for an answer from one network, and from everyone
select count(*) filter (where network = $1) as here, count(*) as everywhere
from native_challenges where expires_at > now();

-- name: native_challenge_take
delete from native_challenges where session_id = $1 and address = $2 and expires_at > now()
returning nonce, request;

-- name: native_challenges_sweep
delete from native_challenges where expires_at <= now();
