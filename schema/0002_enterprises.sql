-- Enterprises, their prefixes and users, data templates, the audit trail, the reverse-lookup index,
-- bulk imports, and the node's own signing key.

create table enterprises (
    id            bigserial primary key,
    name          text not null,
    -- unified social credit code (统一社会信用代码, GB 32100-2015), check character validated
    credit_code   text not null,
    contact_name  text not null default '',
    contact_phone text not null default '',
    contact_email text not null default '',
    created_at    timestamptz not null default now(),
    constraint enterprises_credit_code_key unique (credit_code)
);

-- Prefix states as deployed secondary nodes number them:
-- 0 disabled, 1 enabled, 2 pending deletion, 3 rejected, 4 awaiting review, 5 under review.
create table enterprise_prefixes (
    prefix        text primary key,          -- case-folded, e.g. 88.123.45
    display       text not null,             -- as allocated
    enterprise_id bigint not null references enterprises (id),
    state         smallint not null default 4,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    constraint enterprise_prefixes_state check (state between 0 and 5)
);
create index enterprise_prefixes_enterprise on enterprise_prefixes (enterprise_id);

create table enterprise_users (
    id            bigserial primary key,
    enterprise_id bigint not null references enterprises (id),
    username      text not null,
    password_hash text not null,
    disabled      boolean not null default false,
    created_at    timestamptz not null default now(),
    constraint enterprise_users_username_key unique (username)
);

-- Data templates (SNMS v5 shape). `prefix` '' marks templates shared by every enterprise.
create table templates (
    prefix         text not null,
    version        text not null,
    industry_codes text[] not null default '{}',
    -- [{name, idType, idIndex, required, state, metadata: {type, minLength, maxLength}}]
    items          jsonb not null,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    primary key (prefix, version)
);

insert into templates (prefix, version, industry_codes, items) values (
    '', 'general-product-1.0', '{}',
    '[
      {"name": "产品名称", "idType": "productName", "idIndex": 2000, "required": true, "state": 1,
       "metadata": {"type": "string", "minLength": 1, "maxLength": 100}},
      {"name": "产品型号", "idType": "productModel", "idIndex": 2001, "required": false, "state": 1,
       "metadata": {"type": "string", "minLength": 1, "maxLength": 100}},
      {"name": "生产批次", "idType": "batchNumber", "idIndex": 2002, "required": false, "state": 1,
       "metadata": {"type": "string", "minLength": 1, "maxLength": 64}},
      {"name": "生产日期", "idType": "productionDate", "idIndex": 2003, "required": false, "state": 1,
       "metadata": {"type": "date", "minLength": 10, "maxLength": 10}},
      {"name": "生产企业", "idType": "manufacturer", "idIndex": 2004, "required": true, "state": 1,
       "metadata": {"type": "string", "minLength": 1, "maxLength": 200}},
      {"name": "统一社会信用代码", "idType": "creditCode", "idIndex": 2005, "required": false, "state": 1,
       "metadata": {"type": "string", "minLength": 18, "maxLength": 18}},
      {"name": "产地", "idType": "origin", "idIndex": 2006, "required": false, "state": 1,
       "metadata": {"type": "string", "minLength": 1, "maxLength": 200}},
      {"name": "规格", "idType": "specification", "idIndex": 2007, "required": false, "state": 1,
       "metadata": {"type": "string", "minLength": 1, "maxLength": 200}},
      {"name": "保质期", "idType": "shelfLife", "idIndex": 2008, "required": false, "state": 1,
       "metadata": {"type": "string", "minLength": 1, "maxLength": 64}},
      {"name": "详情链接", "idType": "URL", "idIndex": 2009, "required": false, "state": 1,
       "metadata": {"type": "string", "minLength": 1, "maxLength": 255}}
    ]'::jsonb
);

-- The audit trail: append-only (the trigger below refuses updates and deletes).
create table audit (
    id            bigserial primary key,
    at            timestamptz not null default now(),
    actor         text not null,
    enterprise_id bigint,
    operation     text not null,
    handle        text,          -- case-folded handle, when the entry is about one
    before        json,
    after         json,
    detail        json
);
create index audit_handle on audit (handle, id) where handle is not null;
create index audit_enterprise on audit (enterprise_id, id) where enterprise_id is not null;
-- time-ordered appends: a BRIN index is tiny and nearly free to maintain
create index audit_at on audit using brin (at);

create function audit_is_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'the audit trail is append-only' using errcode = 'insufficient_privilege';
end;
$$;
create trigger audit_append_only before update or delete on audit
    for each row execute function audit_is_append_only();
create trigger audit_no_truncate before truncate on audit
    for each statement execute function audit_is_append_only();

-- Reverse lookup: one row per searchable value (types the operator allows, e.g. URL), so that a
-- search is an index scan; `term` is '<type folded>=<value>'. One index serves both the searches
-- (exact and `value*`, through text_pattern_ops) and the removal of a handle's old terms, which the
-- node always knows (it has the old record in hand when it changes or deletes one): a second index
-- on the key would cost every bulk import a third of its time for nothing.
create table search_terms (
    term   text not null,
    key    text not null,
    prefix text not null
);
create index search_terms_term on search_terms (term text_pattern_ops);

-- Bulk imports: how far each file has been committed, so an interrupted import resumes.
create table imports (
    digest      text primary key,   -- sha256 of the file
    path        text not null,
    rows_done   bigint not null default 0,
    accepted    bigint not null default 0,
    rejected    bigint not null default 0,
    finished    boolean not null default false,
    started_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

-- Keys the node generates for itself (e.g. to sign enterprise API tokens), shared by every worker.
create table node_keys (
    name       text primary key,
    secret     bytea not null,
    created_at timestamptz not null default now()
);
