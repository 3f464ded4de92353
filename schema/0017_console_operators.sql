-- Accounts of the operator console besides the node administrator (resolver/console): a reviewer
-- works the review queue; an operator also runs enterprises, prefixes, the node page and the
-- audit search. Passwords are salted scrypt hashes, as enterprise users' are. Only the node
-- administrator creates, changes or disables them (the console's operators page).
create table console_operators (
    id            bigserial primary key,
    username      text not null unique,
    password_hash text not null,
    role          text not null check (role in ('reviewer', 'operator')),
    disabled      boolean not null default false,
    created_at    timestamptz not null default now()
);
