-- Challenges of the native Handle protocol's administration (RFC 3652 section 3.5;
-- HandleServer.createChallenge / OC_RESPONSE_TO_CHALLENGE). An admin request is answered with a
-- nonce under a fresh session id; the client answers in another message, often over a new TCP
-- connection that lands on another worker or instance, so the pending request is kept here. An
-- answer takes its row (single use); expired rows are ignored and swept.
create table native_challenges (
    session_id   integer primary key,      -- the envelope session id the challenge was sent under
    address      text not null,            -- the client address it was sent to; an answer must come from there
    nonce        bytea not null,
    request      bytea not null,           -- the original request: envelope then header and body
    expires_at   timestamptz not null
);
create index native_challenges_expiry on native_challenges (expires_at);
