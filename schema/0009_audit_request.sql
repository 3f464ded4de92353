-- Which request an audit entry came from: its X-Request-Id (the client's, or the one the node made
-- and sent back) and the client's address (the TCP peer, or the client a --trusted-proxies proxy
-- named in X-Forwarded-For). Null for entries written outside a request (resolver import) and for
-- those written before this migration. Adding nullable columns without a default rewrites nothing.
alter table audit add column request_id text, add column client text;
