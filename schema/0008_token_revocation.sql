-- Revocation of enterprise API tokens. Tokens are signed claims, so ending one before it expires
-- needs state: a token carries its user's token generation at issue, and changing the password,
-- disabling the user or the operator revoking its tokens moves the generation on, which voids
-- every token issued before. Tokens issued before this migration carry none and count as 0.
alter table enterprise_users add column token_generation bigint not null default 0;

-- Single tokens ended by a logout (the user's other tokens stay valid), kept until they would have
-- expired anyway and only while their generation is current; a deleted user's rows go with it.
create table revoked_tokens (
    user_id    bigint not null references enterprise_users (id) on delete cascade,
    generation bigint not null,
    digest     bytea not null,          -- sha256 of the token as sent
    expires_at timestamptz not null,
    primary key (user_id, digest)
);
