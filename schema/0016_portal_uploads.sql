-- Files uploaded in the enterprise portal (resolver/portal/uploads.py): each is registered row by
-- row through the enterprise API's service, in chunks, and its progress is kept here so that any
-- worker or instance can show it; the rejected rows' report (CSV or JSON Lines, as `resolver
-- import` writes it) is kept with it for the enterprise to download, fix and upload again.
create table portal_uploads (
    id            bigserial primary key,
    enterprise_id bigint not null references enterprises (id) on delete cascade,
    username      text not null,
    file_name     text not null,
    format        text not null,
    state         text not null default 'running' check (state in ('running', 'done', 'failed')),
    total_rows    bigint not null default 0,
    rows_done     bigint not null default 0,
    accepted      bigint not null default 0,
    rejected      bigint not null default 0,
    message       text not null default '',
    report        bytea,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);
create index portal_uploads_by_enterprise on portal_uploads (enterprise_id, id desc);
