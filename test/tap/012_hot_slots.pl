# Hot-row slots are reused without a restart: with inventory.hot_rows = 4,
# forty rows go through hot and back (ten times the slots), while clients
# deduct from all of them and read their counters without a lock.  No call
# fails with 53400, no row ever answers with another row's counter (each row
# holds a different order of magnitude), nothing is oversold, and
# reconcile() is empty at the end.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use InvNode;

my $rows = 40;
my $node = inventory_node('slots', qq{
inventory.hot_rows = 4
max_connections = 40
});
$node->safe_psql('postgres', qq{
	CREATE EXTENSION inventory;
	SELECT inventory.restock('r' || i, i * 1000000, 'po-' || i) FROM generate_series(1, $rows) i;
});

# clients: deduct from every row in turn, and check each row's available
# figure lies in that row's own range
my @clients;
for my $c (1 .. 4)
{
	my $file = "${PostgreSQL::Test::Utils::tmp_check}/slots-$c.sql";
	open my $fh, '>', $file or die $!;
	for my $n (1 .. 60)
	{
		for my $i (1 .. $rows)
		{
			print $fh "SELECT status FROM inventory.deduct('r$i', 1, 'c$c-$n-$i');\n";
			print $fh "SELECT CASE WHEN a BETWEEN $i * 1000000 - 1000 AND $i * 1000000 THEN 'in range' "
			  . "ELSE 'r$i saw ' || a END FROM inventory.available('r$i', 'default') a;\n";
		}
	}
	close $fh;
	my %client = (out => '', err => '');
	$client{h} = IPC::Run::start(
		[ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-f', $file ],
		'>', \$client{out}, '2>', \$client{err});
	push @clients, \%client;
}

# meanwhile: every row made hot in turn, at most four at a time
my $refused = 0;
for my $k (1 .. $rows)
{
	my ($ret, $out, $err) = $node->psql('postgres', "SELECT status FROM inventory.set_hot('r$k')");
	$refused++ if $err =~ /too many hot rows/;
	$node->safe_psql('postgres', "SELECT inventory.deduct('r$k', 1, 'main-$k')");
	if ($k > 3)
	{
		my $cold = $k - 3;
		($ret, $out, $err) = $node->psql('postgres', "SELECT status FROM inventory.set_hot('r$cold', false)");
		$refused++ if $err =~ /too many hot rows/;
	}
}
is($refused, 0, 'no set_hot ran out of slots: 40 rows through 4 slots');

my ($answers, $wrong, $errors) = (0, 0, '');
for my $client (@clients)
{
	$client->{h}->finish;
	$errors .= $client->{err};
	for (split /\n/, $client->{out})
	{
		$answers++;
		$wrong++ if /saw/;
	}
}
is($errors, '', 'the clients met no error (no 53400 for a call on a hot row)');
cmp_ok($answers, '>=', 4 * 60 * $rows * 2, 'every call answered');
is($wrong, 0, "no row ever answered with another row's counter");
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE loaded) FROM inventory.hot_counters()}),
	'3', 'three rows are hot at the end');
$node->safe_psql('postgres', 'SELECT inventory.merge()');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM inventory.stock_levels
	 WHERE available < 0 OR available > substr(sku, 2)::bigint * 1000000}), '0',
	'nothing oversold');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'), '0',
	'reconcile() is empty');

$node->stop;
done_testing();
