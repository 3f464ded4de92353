-- Daily registration and resolution counts.

-- name: daily_add
insert into daily_counts (day, prefix, registrations, resolutions, not_found)
select * from unnest($1::date[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
on conflict (day, prefix) do update set
    registrations = daily_counts.registrations + excluded.registrations,
    resolutions = daily_counts.resolutions + excluded.resolutions,
    not_found = daily_counts.not_found + excluded.not_found;

-- name: day_counts
select prefix, registrations, resolutions, not_found from daily_counts where day = $1 order by prefix;

-- name: counted_days
select distinct day from daily_counts where day >= $1 order by day;

-- name: first_counted_day
select min(day) from daily_counts;

-- name: daily_range
select prefix, sum(registrations), sum(resolutions), sum(not_found) from daily_counts
where day >= $1 and day <= $2 group by prefix order by prefix;

-- name: daily_fold_unserved
-- rows of prefixes the node does not serve ($1 the node prefix, $2 the row of the others, $3 the
-- prefix of prefix records) moved where resolver.services.statistics.ServedPrefixes.label puts
-- them: the nearest allocated prefix above; else registrations and resolutions to the node prefix
-- (out of its scope: dropped), not-found answers to $2
with moved as (
    delete from daily_counts d
    where d.prefix <> $1 and d.prefix <> $2
        and not exists (select 1 from enterprise_prefixes e where e.prefix = d.prefix)
    returning d.day, d.prefix, d.registrations, d.resolutions, d.not_found
), labelled as (
    select m.day, m.registrations, m.resolutions, m.not_found,
        (select e.prefix from enterprise_prefixes e where starts_with(m.prefix, e.prefix || '.')
         order by length(e.prefix) desc limit 1) as owner,
        m.prefix = $3 or starts_with(m.prefix, $1 || '.') as here
    from moved m
), parts as (
    select day, coalesce(owner, case when here then $1 end) as prefix, registrations, resolutions,
        0::bigint as not_found
    from labelled where registrations <> 0 or resolutions <> 0
    union all
    select day, coalesce(owner, $2), 0::bigint, 0::bigint, not_found from labelled where not_found <> 0
)
insert into daily_counts (day, prefix, registrations, resolutions, not_found)
select day, prefix, sum(registrations), sum(resolutions), sum(not_found) from parts
where prefix is not null group by day, prefix
on conflict (day, prefix) do update set
    registrations = daily_counts.registrations + excluded.registrations,
    resolutions = daily_counts.resolutions + excluded.resolutions,
    not_found = daily_counts.not_found + excluded.not_found;

-- name: created_per_day
select prefix, count(*) from handles
where (created_at at time zone 'UTC')::date = $1 and prefix <> '0.na'
group by prefix order by prefix;

-- name: registered_per_day
select prefix, registrations from daily_counts where day = $1 order by prefix;

-- name: identifiers_estimate
select greatest(reltuples, 0)::bigint from pg_class where relname = 'handles';

-- name: daily_series
-- the counts of each day from $2 to $3 of the prefixes $1 (all of them when $1 is null), summed
select day, sum(registrations), sum(resolutions), sum(not_found) from daily_counts
where ($1::text[] is null or prefix = any($1::text[])) and day >= $2 and day <= $3
group by day order by day;
