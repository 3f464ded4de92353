-- Reverse lookup by tenant. A search reads one prefix at a time (a tenant its own prefixes, the node
-- administrator each prefix in turn), values in byte order and handles in key order within a
-- value, so that exact values, `value*` and deep pages are a range read of this index that stops
-- after the page it wants, instead of a scan of every term of every tenant. The same index finds
-- the exact (prefix, term, key) rows that a change or deletion removes, so the term-only index of
-- 0002 has nothing left to do and goes: bulk imports keep maintaining one index on this table.
create index search_terms_prefix_term on search_terms (prefix, term text_pattern_ops, key);
drop index search_terms_term;
