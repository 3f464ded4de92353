-- English labels of the shared general product template, for the bilingual scan page. Labels are
-- presentation only: the template's items, indexes and rules are unchanged.
update templates t set items = (
    select jsonb_agg(item || jsonb_build_object('nameEn', labels.en) order by (item->>'idIndex')::int)
    from jsonb_array_elements(t.items) as item
    join (values
        (2000, 'Product name'), (2001, 'Model'), (2002, 'Batch'), (2003, 'Production date'),
        (2004, 'Manufacturer'), (2005, 'Unified social credit code'), (2006, 'Origin'),
        (2007, 'Specification'), (2008, 'Shelf life'), (2009, 'Details')
    ) as labels (idx, en) on labels.idx = (item->>'idIndex')::int
)
where t.prefix = '' and t.version = 'general-product-1.0';
