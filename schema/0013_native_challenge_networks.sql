-- The client network of each pending native challenge (an IPv4 address, or an IPv6 /64), so that
-- one network cannot fill the table: anyone may send an admin request, and each one challenged
-- keeps its request here until it is answered or expires (resolver/native/admin.py caps them).
alter table native_challenges add column network text not null default '';
create index native_challenges_network on native_challenges (network);
