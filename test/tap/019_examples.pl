# The application examples (examples/python, psycopg 3; examples/node,
# node-postgres) run against a real server as the README's application role,
# and their backend is killed in the middle of their first call: each sends
# the call again with the same key on a new connection, and the checkout
# goes on.  Their answers, HTTP mappings and the stock left are checked, and
# nothing is sold twice.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename;
use IPC::Run;
use JSON::PP;
use InvNode;

my $examples = dirname(__FILE__) . '/../../examples';
my $node = inventory_node('examples');
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory;
	CREATE ROLE shop_app LOGIN;
	GRANT USAGE ON SCHEMA inventory TO shop_app;
	GRANT EXECUTE ON FUNCTION
	    inventory.deduct(text, bigint, text, text, boolean),
	    inventory.reserve(text, bigint, text, interval, text),
	    inventory.confirm(text, bigint, text, text),
	    inventory.release(text, bigint, text, text),
	    inventory.deduct_cart(text[], bigint[], text, text[]),
	    inventory.reserve_cart(text[], bigint[], text, interval, text[]),
	    inventory.available(text, text),
	    inventory.allocation(text),
	    inventory.refund(text, bigint, text)
	  TO shop_app;
	GRANT SELECT ON inventory.stock_levels, inventory.availability,
	                inventory.reservations TO shop_app;
	SELECT inventory.restock('pen', 100, 'po-pen');
	SELECT inventory.restock('ink', 100, 'po-ink');
});

# Run one example, its first call held up by a lock on the pen row, then its
# backend terminated while it waits; returns its answers by step.
sub checkout
{
	my ($name, $cmd, $order) = @_;
	my $holder = IPC::Run::start(
		[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c',
		  "SELECT pg_advisory_lock(inventory.lock_key('pen')), pg_sleep(600)" ],
		'>', \my $hout, '2>', \my $herr);
	$node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
		   AND pid <> pg_backend_pid()}) or die 'no lock holder';
	my @env = ('env', 'PGHOST=' . $node->host, 'PGPORT=' . $node->port, 'PGUSER=shop_app',
		'PGDATABASE=postgres');
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ @env, @$cmd, $order ], '>', \$out, '2>', \$err);
	ok($node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE application_name = 'checkout-$name' AND wait_event_type = 'Lock'}),
		"$name: its first call waits for the row");
	$node->safe_psql('postgres', qq{
		SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		 WHERE application_name = 'checkout-$name'});
	$node->safe_psql('postgres', q{
		SELECT pg_terminate_backend(pid) FROM pg_locks
		 WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()});
	$holder->finish;
	ok($h->finish, "$name: the example ran to the end") or diag $err;
	my %step;
	for (split /\n/, $out)
	{
		my $line = decode_json($_);
		$step{ $line->{step} } = $line;
	}
	return \%step;
}

for my $example (
	[ 'py', [ '/usr/bin/python3', "$examples/python/checkout.py" ], 'py-1' ],
	[ 'node', [ 'node', "$examples/node/checkout.js" ], 'node-1' ])
{
	my ($name, $cmd, $order) = @$example;
	my %before = split /[|\n]/, $node->safe_psql('postgres',
		q{SELECT sku, available FROM inventory.stock_levels WHERE sku IN ('ink', 'pen')});
	my $s = checkout($name, $cmd, $order);
	cmp_ok($s->{'hold cart'}{retried}, '>', 0, "$name: the held cart was sent again after the kill");
	is("$s->{'hold cart'}{status} $s->{'hold cart'}{http}", 'ok 200', "$name: and held");
	is("$s->{'ship 2 pens'}{status} $s->{'ship 2 pens'}{http}", 'ok 200', "$name: a step ships two pens");
	is("$s->{'ship 2 pens again'}{status} $s->{'ship 2 pens again'}{http}", 'duplicate 200',
		"$name: the step sent again is a duplicate");
	is($s->{'ship the rest'}{status}, 'ok', "$name: the rest is confirmed");
	is($s->{'refund 1 ink'}{status}, 'ok', "$name: a unit is refunded");
	is("$s->{'refund 5 ink'}{status} $s->{'refund 5 ink'}{http}", 'insufficient 409',
		"$name: more than was sold: insufficient, 409");
	is("$s->{'reuse a key'}{sqlstate} $s->{'reuse a key'}{http}", '23505 422',
		"$name: a key reused: 23505 (inventory_key_reuse), 422");
	is_deeply($s->{'stock levels'}{levels},
		{ pen => $before{pen} - 4, ink => $before{ink} - 2 },
		"$name: 4 pens and 2 inks sold (1 ink of 3 came back), once each");
	is($node->safe_psql('postgres', qq{
		SELECT count(*) FROM inventory.ledger WHERE key = '$order' AND call IS NOT NULL}), '1',
		"$name: its key is recorded once");
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'), '0',
	'reconcile() is empty');
$node->stop;

done_testing();
