# Hot rows without hints (inventory.auto_hot): clients deduct from a row
# nobody made hot, half of them inside transaction blocks.  (a) The worker
# makes it hot while they queue, and a backend is killed right after: every
# deduction a client saw committed is in the ledger, nothing is oversold,
# reconcile() is empty.  (b) The row goes quiet under a trickle of calls and
# the worker makes it ordinary again, likewise without loss.  Meanwhile a row
# made ordinary by hand (pinned) is contended just as hard and stays ordinary,
# and a load spread over 200 rows promotes none of them.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use InvNode;

my $flash = 6000;    # sells out in (a)
my $node = inventory_node('autohot', qq{
restart_after_crash = on
max_connections = 50
inventory.merge_interval = '100ms'
inventory.auto_hot = on
inventory.auto_hot_interval = '200ms'
inventory.auto_hot_waits = 5
inventory.auto_hot_quiet = '1s'
});
$node->safe_psql('postgres', qq{
	CREATE EXTENSION inventory;
	SELECT inventory.restock('flash', $flash, 'po-flash');
	SELECT inventory.restock('pinned', 1000000, 'po-pinned');
	SELECT inventory.set_hot('pinned', false);
	SELECT inventory.restock('calm-' || i, 100000, 'po-calm-' || i) FROM generate_series(1, 200) i;
});

my %acked;
my $round = 0;

# Start psql clients running $calls lines each, made by $line->($key, $i);
# a line prints "key status" only once its call has committed.
sub start_load
{
	my ($clients, $calls, $line) = @_;
	$round++;
	return start_clients($node, 'postgres', "load-$round", [ map {
		my $c = $_;
		join('', map { $line->("r$round-c$c-$_", $_) } 1 .. $calls) } 1 .. $clients ]);
}

# A deduction of one unit, in a transaction block for even $i.
sub deduct_line
{
	my ($sku, $key, $i) = @_;
	my $call = "SELECT status AS st FROM inventory.deduct($sku, 1, '$key') \\gset\n";
	return $i % 2
	  ? $call . "\\echo $key :st\n"
	  : "BEGIN;\n" . $call . "COMMIT;\n\\echo $key :st\n";
}

# Wait for the clients; remember every deduction they saw committed.
sub finish_load
{
	my @ok = grep { $_->[1] eq 'ok' } finish_clients($_[0]);
	$acked{ $_->[0] } = 1 for @ok;
	return scalar @ok;
}

# The checks made after each part.
sub check_state
{
	my ($label) = @_;
	$node->poll_query_until('postgres', 'SELECT true') or die "server not back";
	my $keys = join(',', map { "'$_'" } sort keys %acked);
	is($node->safe_psql('postgres', qq{
		SELECT count(*) FROM unnest(ARRAY[$keys]::text[]) k
		 WHERE NOT EXISTS (SELECT FROM inventory.ledger l
		                    WHERE l.key = k AND l.op = 'deduct')}),
		'0', "$label: every deduction a client saw committed is in the ledger");
	is($node->safe_psql('postgres', qq{
		SELECT sum(-on_hand_delta) FILTER (WHERE op = 'deduct') <= sum(on_hand_delta) FILTER (WHERE op = 'restock')
		  FROM inventory.ledger WHERE sku = 'flash'}),
		't', "$label: the row is not oversold");
	ok($node->poll_query_until('postgres',
			'SELECT inventory.merge() >= 0 AND count(*) = 0 FROM inventory.pending'),
		"$label: the queue is merged");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'),
		'0', "$label: reconcile() is empty");
}

# (a) 8 clients queue on flash (and on the pinned row, and the calm rows)
my $load = start_load(8, 3000, sub {
	my ($key, $i) = @_;
	my $sku = $i % 4 == 0 ? "'pinned'"
	  : $i % 4 == 1 ? "'calm-' || (1 + (hashtext('$key') & 255) % 200)"
	  : "'flash'";
	return deduct_line($sku, $key, $i);
});
ok($node->poll_query_until('postgres',
		q{SELECT hot AND NOT pinned FROM inventory.stock WHERE sku = 'flash'}),
	'(a) the row its writers queue on is made hot, by the rule');
like(slurp_file($node->logfile), qr/row \(flash, default\) made hot: its writers waited for its lock \d+ times/,
	'(a) the promotion is logged');
cmp_ok($node->safe_psql('postgres', 'SELECT promoted FROM inventory.worker_status()'),
	'>=', 1, '(a) worker_status() counts the promotion');

# right after the promotion: kill -9 of a backend under the load
my $victim = $node->safe_psql('postgres', q{
	SELECT pid FROM pg_stat_activity
	 WHERE query LIKE '%inventory.deduct%' AND pid <> pg_backend_pid() LIMIT 1});
ok($victim =~ /^\d+$/, '(a) found a busy backend to kill');
kill 'KILL', $victim;
cmp_ok(finish_load($load), '>', 0, '(a) clients had deductions committed');
check_state('(a) promotion, then a crash');
is($node->safe_psql('postgres', q{SELECT hot FROM inventory.stock WHERE sku = 'flash'}),
	't', '(a) the row is still hot after the crash');

# (b) flash goes quiet (a trickle of calls) while the calm rows stay busy
$node->safe_psql('postgres', "SELECT inventory.restock('flash', 1000, 'po-flash-2')");
$load = start_load(4, 1500, sub {
	my ($key, $i) = @_;
	return deduct_line("'calm-' || (1 + (hashtext('$key') & 255) % 200)", $key, $i);
});
my $trickle = start_load(1, 100, sub {
	my ($key, $i) = @_;
	return deduct_line("'flash'", $key, $i) . "SELECT pg_sleep(0.1) \\g /dev/null\n";
});
ok($node->poll_query_until('postgres',
		q{SELECT NOT hot FROM inventory.stock WHERE sku = 'flash'}),
	'(b) the row is made ordinary again once quiet, under a trickle of calls');
like(slurp_file($node->logfile), qr/row \(flash, default\) made ordinary again/,
	'(b) the demotion is logged');
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory.hot_counters()}),
	'0', '(b) its slot is free');
cmp_ok(finish_load($load) + finish_load($trickle), '>', 0, '(b) clients had deductions committed');
check_state('(b) demotion');

# what the rule left alone
is($node->safe_psql('postgres', q{SELECT hot FROM inventory.stock WHERE sku = 'pinned'}),
	'f', 'a row made ordinary by hand stays ordinary, however contended');
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory.stock WHERE sku LIKE 'calm-%' AND hot}),
	'0', 'a load spread over 200 rows promotes none of them');
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory.worker_status() WHERE errors > 0}),
	'0', 'the worker met no error');

done_testing();
