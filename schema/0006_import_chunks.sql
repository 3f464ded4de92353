-- The chunks of an import that committed, each in the transaction that wrote its rows. Two chunks
-- are written at once on two connections, so they may commit out of order: a resumed import skips
-- exactly the lines of the chunks recorded here.
create table import_chunks (
    digest      text not null references imports (digest),
    first_line  bigint not null,
    last_line   bigint not null,
    accepted    bigint not null,
    rejected    bigint not null,
    primary key (digest, first_line)
);
