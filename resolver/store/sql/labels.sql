-- name: labels_range
-- the identifiers directly under a prefix from one key to another, in key order, optionally only
-- those whose production batch (type batchNumber) is $4
select handle, vals::text from handles
where prefix = $1 and key >= $2 and key <= $3
  and ($4 = '' or exists (
      select 1 from json_array_elements(vals) v
      where lower(v->>'type') = 'batchnumber' and v->'data'->>'value' = $4))
order by key limit $5;
