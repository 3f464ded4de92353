-- name: labels_range
-- the identifiers directly under a prefix from one key to another, in key order, optionally only
-- those whose production batch (type batchNumber) is $4
select handle, vals::text from handles
where prefix = $1 and key >= $2 and key <= $3
  and ($4 = '' or exists (
      select 1 from json_array_elements(vals) v
      where lower(v->>'type') = 'batchnumber' and v->'data'->>'value' = $4))
order by key limit $5;

-- name: portal_find
-- the portal's search within one prefix: handles starting with $2 (a LIKE pattern on the key, or
-- ''), created from day $3 to day $4 (UTC, both included, or null), holding a value of type $5
-- (case-folded, or '') equal to $6; in key order, a page of $8 from $7
select handle from handles
where prefix = $1
  and ($2 = '' or key like $2 escape '\')
  and ($3::date is null or (created_at at time zone 'UTC')::date >= $3::date)
  and ($4::date is null or (created_at at time zone 'UTC')::date <= $4::date)
  and ($5 = '' or exists (
      select 1 from json_array_elements(vals) v
      where lower(v->>'type') = $5 and v->'data'->>'value' = $6))
order by key offset $7 limit $8;
