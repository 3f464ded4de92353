-- The authenticated sessions of the Handle HTTP API (schema/0011_handle_sessions.sql).

-- name: handle_session_remember
insert into handle_sessions (digest, identity, value_index, expires_at) values ($1, $2, $3, to_timestamp($4))
on conflict (digest) do update set identity = excluded.identity, value_index = excluded.value_index,
    expires_at = excluded.expires_at;

-- name: handle_session_get
select identity, value_index from handle_sessions where digest = $1 and expires_at > now();

-- name: handle_session_forget
delete from handle_sessions where digest = $1;

-- name: handle_sessions_sweep
delete from handle_sessions where expires_at <= now();

-- name: handle_sessions_forget_identity
delete from handle_sessions where identity = $1;
