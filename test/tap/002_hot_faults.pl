# Faults under a many-client load on a hot row: (a) kill -9 of one backend,
# (b) an immediate shutdown and restart, (c) kill -9 of the worker.  After
# each: every deduction a client saw as "ok" is in the ledger, nothing is
# oversold, reconcile() (tables and the rebuilt escrow counter) is empty, the
# worker is back and merges the queue; retries apply nothing twice.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use InvNode;

my $stock = 100000;
my $scarce = 500;    # sells out during the faults
my $node = inventory_node('hot', qq{
restart_after_crash = on
inventory.merge_interval = '100ms'
max_connections = 50
});
$node->safe_psql('postgres', qq{
	CREATE EXTENSION inventory;
	SELECT inventory.restock('flash', $stock, 'po-1');
	SELECT inventory.set_hot('flash');
	SELECT inventory.restock('scarce', $scarce, 'po-2');
	SELECT inventory.set_hot('scarce');
});

my %acked;
my $round = 0;

# Start $clients psql clients deducting from the hot row; returns them.
sub start_load
{
	my ($clients, $calls) = @_;
	$round++;
	return start_clients($node, 'postgres', "load-$round", [ map {
		my $c = $_;
		join('', map {
			my $sku = $_ % 10 ? 'flash' : 'scarce';
			"SELECT 'r$round-c$c-$_', status FROM inventory.deduct('$sku', 1, 'r$round-c$c-$_');\n"
		} 1 .. $calls) } 1 .. $clients ]);
}

# Wait for the clients and remember every deduction they saw succeed.
sub finish_load
{
	my @ok = grep { $_->[1] eq 'ok' } finish_clients($_[0]);
	$acked{ $_->[0] } = 1 for @ok;
	return scalar @ok;
}

# The pid of the worker, once it is running.
sub worker_pid
{
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'inventory worker'")
	  or die "the worker did not start";
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'inventory worker'");
}

# The checks made after every fault.
sub check_state
{
	my ($label) = @_;
	$node->poll_query_until('postgres', 'SELECT true') or die "server not back";
	my $keys = join(',', map { "'$_'" } sort keys %acked);
	is($node->safe_psql('postgres', qq{
		SELECT count(*) FROM unnest(ARRAY[$keys]::text[]) k
		 WHERE NOT EXISTS (SELECT FROM inventory.ledger l
		                    WHERE l.key = k AND l.op = 'deduct')}),
		'0', "$label: every acknowledged deduction is in the ledger");
	is($node->safe_psql('postgres', qq{
		SELECT count(*) FILTER (WHERE sku = 'flash') <= $stock
		   AND count(*) FILTER (WHERE sku = 'scarce') <= $scarce
		  FROM inventory.ledger WHERE op = 'deduct'}),
		't', "$label: nothing oversold");
	# a deduct after the restart loads the counter from the tables
	$node->safe_psql('postgres',
		"SELECT inventory.deduct('flash', 1, 'probe-$label')");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'),
		'0', "$label: reconcile() is empty, the rebuilt counter included");
	ok($node->poll_query_until('postgres',
			'SELECT count(*) = 0 FROM inventory.pending'),
		"$label: the worker merges the queue");
}

# (a) kill -9 of one backend in the middle of the load
my $load = start_load(8, 2500);
$node->poll_query_until('postgres',
	"SELECT count(*) > 500 FROM inventory.ledger WHERE key LIKE 'r$round-%'");
my $victim = $node->safe_psql('postgres', qq{
	SELECT pid FROM pg_stat_activity
	 WHERE query LIKE '%inventory.deduct%' AND pid <> pg_backend_pid() LIMIT 1});
ok($victim =~ /^\d+$/, 'found a busy backend to kill');
cmp_ok($node->safe_psql('postgres', 'SELECT merged_requests FROM inventory.worker_status()'),
	'>', 0, 'the load runs in merged mode');
kill 'KILL', $victim;
cmp_ok(finish_load($load), '>', 0, 'backend kill: clients had deductions acknowledged');
check_state('backend kill');

# (b) an immediate shutdown under load, then a restart
$load = start_load(8, 2500);
$node->poll_query_until('postgres',
	"SELECT count(*) > 500 FROM inventory.ledger WHERE key LIKE 'r$round-%'");
$node->stop('immediate');
cmp_ok(finish_load($load), '>', 0, 'immediate shutdown: clients had deductions acknowledged');
$node->start;
check_state('immediate shutdown');

# (c) kill -9 of the worker under load
my $worker = worker_pid();
$load = start_load(8, 2500);
$node->poll_query_until('postgres',
	"SELECT count(*) > 500 FROM inventory.ledger WHERE key LIKE 'r$round-%'");
kill 'KILL', $worker;
finish_load($load);
$node->poll_query_until('postgres', 'SELECT true');
my $new_worker = worker_pid();
isnt($new_worker, $worker, 'worker kill: a new worker is running');
check_state('worker kill');

# clients retry every acknowledged deduction with its key
my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM inventory.ledger');
my $retry = $node->safe_psql('postgres', join('', map {
	"SELECT status FROM inventory.deduct('" . ((split /-/)[2] % 10 ? 'flash' : 'scarce')
	  . "', 1, '$_');\n" } sort keys %acked));
is(scalar(grep { $_ ne 'duplicate' } split /\n/, $retry), 0,
	'retries of acknowledged deductions are duplicates');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.ledger'),
	$before, 'retries wrote nothing');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'),
	'0', 'reconcile() is empty at the end');
# how many scarce units the faulted rounds sold depends on when each fault
# cut the clients off; buyers now take what is left, one unit each, and the
# sku sells out exactly: never more than its stock, none left behind
$node->safe_psql('postgres', qq{
	SELECT inventory.deduct('scarce', 1, 'last-' || i) FROM generate_series(1, $scarce) i});
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM inventory.ledger WHERE op = 'deduct' AND sku = 'scarce'}),
	$scarce, 'the scarce sku sold out exactly');
is($node->safe_psql('postgres', "SELECT inventory.available('scarce', 'default')"),
	'0', 'and nothing of it is left');

$node->stop;
done_testing();
