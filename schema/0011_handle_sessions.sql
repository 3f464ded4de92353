-- Sessions of the Handle HTTP API's `Authorization: Handle` scheme (POST /api/sessions, then a
-- challenge answer, then requests naming only the session). A session that is not yet
-- authenticated needs no row: its id is signed by the node and its nonce derived from it. Once a
-- challenge answer proves an identity, the session is stored here, so that every worker and
-- instance knows it; DELETE /api/sessions/this removes it, and expired rows are ignored and swept.
create table handle_sessions (
    digest       bytea primary key,        -- sha256 of the session id as sent; never the id
    identity     text not null,            -- the handle of the proven identity, as given
    value_index  integer not null,         -- its index (the key's, when 0 was given)
    expires_at   timestamptz not null
);
create index handle_sessions_expiry on handle_sessions (expires_at);
