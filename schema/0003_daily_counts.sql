-- Threshold evidence: what the node did, per day and per prefix. Workers add their counts every
-- few seconds; the importer adds its counts in the transaction that writes the identifiers.
create table daily_counts (
    day           date not null,
    prefix        text not null,
    registrations bigint not null default 0,
    resolutions   bigint not null default 0,
    not_found     bigint not null default 0,
    primary key (day, prefix)
);

-- Registrations reconcile with the identifiers table by the day they were created.
create index handles_created_day on handles (((created_at at time zone 'UTC')::date), prefix);
