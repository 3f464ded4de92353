-- Identifier records. One row per handle; all of its values live together in one JSON array so
-- that a resolution is a single primary-key lookup. `json`, not `jsonb`: the node never queries
-- inside the values, and `json` keeps them as written (in index order) at no conversion cost.
create table handles (
    -- the handle with its ASCII letters lower-cased: the key every lookup uses
    key        text primary key,
    -- the handle as it was first registered, shown back to clients
    handle     text not null,
    -- the case-folded prefix (everything before the first '/'), for listing under a prefix
    prefix     text not null,
    -- the stored values, each {index, type, data: {format, value}, ttl, timestamp, permissions[, references]}
    vals       json not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint handles_vals_is_array check (json_typeof(vals) = 'array')
);

-- Listing under a prefix pages through (prefix, key) in key order.
create index handles_prefix_key on handles (prefix, key);
