-- Data templates of prefixes.

-- name: template_insert
insert into templates (prefix, version, industry_codes, items, name, name_en) values ($1, $2, $3, $4::jsonb, $5, $6)
on conflict (prefix, version) do nothing returning version;

-- name: template_lock
select prefix, version, industry_codes, items::text, name, name_en from templates
where prefix = $1 and version = $2 for update;

-- name: template_update
update templates set industry_codes = $3, items = $4::jsonb, name = $5, name_en = $6, updated_at = now()
where prefix = $1 and version = $2;

-- name: templates_list
select prefix, version, industry_codes, items::text, name, name_en from templates
where prefix = any($1::text[]) order by prefix desc, version;

-- name: templates_all
select prefix, version, industry_codes, items::text from templates;
