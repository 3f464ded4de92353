-- Trusted resolution per enterprise prefix (issue 17 item 4): when `signed`, every record written
-- under the prefix carries an HS_SIGNATURE made by the node's key, certified for the prefix by an
-- HS_CERT in `0.NA/<prefix>` (resolver/services/record_signing.py). Off by default: the operator
-- turns it on (PUT /admin/prefixes/{prefix}/signing), and existing records are signed then.
alter table enterprise_prefixes add column signed boolean not null default false;
