-- Display names of templates, for the scan page ("产品类型：通用产品" / "Product type: General
-- product"): `name` in Chinese, `name_en` in English, both optional and presentation only (a
-- template's version, items and rules are unchanged). The shared general product template seeded by
-- 0002 gets its names. Adding nullable columns without a default rewrites nothing.
alter table templates add column name text, add column name_en text;

update templates set name = '通用产品', name_en = 'General product'
where prefix = '' and version = 'general-product-1.0';
