# Merged mode with a synchronous standby: a caller answers "ok" only once the
# standby has its deduction, whatever happens to the committer (terminated or
# cancelled while callers wait); a cancelled caller gets PostgreSQL's own
# warning; after a failover every acknowledged deduction is on the standby.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
# The worker's expiry passes, automatic rule, launcher and first merge pass
# pause merged mode (a call then takes the transactional path): keep them
# out of the way of the counts below.
$primary->append_conf('postgresql.conf', q{
shared_preload_libraries = 'inventory'
inventory.serve_all_databases = off
inventory.merge_interval = '1h'
inventory.expire_interval = '1h'
inventory.auto_hot = off
});
$primary->start;
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->append_conf('postgresql.conf', "shared_preload_libraries = 'inventory'\n");
$standby->start;
$primary->append_conf('postgresql.conf', "synchronous_standby_names = '*'\n");
$primary->reload;
$primary->poll_query_until('postgres',
	"SELECT sync_state = 'sync' FROM pg_stat_replication")
  or die 'the standby is not synchronous';

$primary->safe_psql('postgres', q{
	CREATE EXTENSION inventory;
	SELECT inventory.restock('H', 1000, 'r1');
	SELECT inventory.set_hot('H');
	SELECT inventory.deduct('H', 1, 'warm-up');
});

my %acked;
my $merged = "SELECT merged_requests FROM inventory.worker_status()";

# deductions acknowledged while the standby is up
my $before = $primary->safe_psql('postgres', $merged);
for my $i (1 .. 10)
{
	my $st = $primary->safe_psql('postgres', "SELECT status FROM inventory.deduct('H', 1, 'a$i')");
	$acked{"a$i"} = 1 if $st eq 'ok';
}
is(scalar(keys %acked), 10, 'with the standby up, deductions are acknowledged');
is($primary->safe_psql('postgres', $merged) - $before, 10, 'in merged mode');

# A caller in the background; returns the handle, its output and its pid.
my $n = 0;
sub caller_bg
{
	my ($key) = @_;
	my %c = (out => '', err => '');
	$c{h} = IPC::Run::start(
		[ 'psql', '-X', '-At', '-d', $primary->connstr('postgres'), '-c',
		  "SELECT 'caller-$key', status FROM inventory.deduct('H', 1, '$key')" ],
		'>', \$c{out}, '2>', \$c{err});
	$primary->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE query LIKE '%caller-$key%' AND wait_event = 'SyncRep'
		   AND pid <> pg_backend_pid()})
	  or die "caller $key does not wait for the standby";
	$c{pid} = $primary->safe_psql('postgres', qq{
		SELECT pid FROM pg_stat_activity
		 WHERE query LIKE '%caller-$key%' AND pid <> pg_backend_pid()});
	return \%c;
}

sub committer_pid
{
	$primary->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'inventory worker' AND datname = current_database()})
	  or die 'no committer';
	return $primary->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'inventory worker' AND datname = current_database()");
}

sub still_waiting
{
	my ($c) = @_;
	$c->{h}->pump_nb;
	return $c->{out} eq '' && $primary->safe_psql('postgres',
		"SELECT wait_event FROM pg_stat_activity WHERE pid = $c->{pid}") eq 'SyncRep';
}

$standby->stop('fast');

# the standby is away: a caller waits itself, the committer does not
my $k1 = caller_bg('k1');
ok(still_waiting($k1), 'standby away: the caller waits for it, without an answer');
isnt($primary->safe_psql('postgres', q{
	SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'inventory worker' AND datname = current_database()}),
	'SyncRep', 'the committer itself is free for the next batch');

# terminate the committer while a caller waits
my $old = committer_pid();
$primary->safe_psql('postgres', "SELECT pg_terminate_backend($old)");
$primary->poll_query_until('postgres', qq{
	SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $old});
ok(still_waiting($k1), 'committer terminated: the caller still has no answer');

# cancel the (new) committer while a second caller waits
my $new = committer_pid();
$before = $primary->safe_psql('postgres', $merged);
my $k2 = caller_bg('k2');
is($primary->safe_psql('postgres', $merged) - $before, 1, 'the new committer took it');
$primary->safe_psql('postgres', "SELECT pg_cancel_backend($new)");
ok(still_waiting($k1) && still_waiting($k2), 'committer cancelled: no caller has an answer');

# a caller cancelled while it waits gets PostgreSQL's warning, as a commit would
my $k3 = caller_bg('k3');
$primary->safe_psql('postgres', "SELECT pg_cancel_backend($k3->{pid})");
$k3->{h}->finish;
like($k3->{err}, qr/canceling wait for synchronous replication/,
	'a cancelled caller is warned that its deduction may not be replicated');

# the standby comes back: the waiting callers answer ok
$standby->start;
$k1->{h}->finish;
$k2->{h}->finish;
is($k1->{out} =~ s/\s+$//r, 'caller-k1|ok', 'standby back: the first caller answers ok');
is($k2->{out} =~ s/\s+$//r, 'caller-k2|ok', 'and the second');
$acked{$_} = 1 for qw(k1 k2);

# failover: a caller waits when the primary goes down; every acknowledged
# deduction is on the promoted standby
$primary->poll_query_until('postgres',
	"SELECT sync_state = 'sync' FROM pg_stat_replication")
  or die 'the standby did not come back';
for my $i (1 .. 10)
{
	my $st = $primary->safe_psql('postgres', "SELECT status FROM inventory.deduct('H', 1, 'b$i')");
	$acked{"b$i"} = 1 if $st eq 'ok';
}
$standby->stop('fast');
my $k4 = caller_bg('k4');
$primary->stop('immediate');
$k4->{h}->finish;
unlike($k4->{out}, qr/ok/, 'the caller cut off by the crash was never told ok');
$standby->start;
$standby->promote;
my $keys = join(',', map { "'$_'" } sort keys %acked);
is($standby->safe_psql('postgres', qq{
	SELECT count(*) FROM unnest(ARRAY[$keys]::text[]) k
	 WHERE NOT EXISTS (SELECT FROM inventory.ledger l WHERE l.key = k AND l.op = 'deduct')}),
	'0', 'after failover every acknowledged deduction (' . scalar(keys %acked) . ') is on the standby');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'), '0',
	'the promoted standby reconciles');

$standby->stop;
done_testing();
