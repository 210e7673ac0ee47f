# An immediate shutdown (a crash, as far as the database is concerned) in the
# middle of many concurrent deductions: after the restart every deduction that
# a client saw as "ok" is in the ledger, nothing is oversold, the invariants
# hold, and clients that retry with the same keys apply nothing twice.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use InvNode;

my $node = inventory_node('crash');
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory;
	SELECT inventory.restock('flash', 3000, 'po-1');
	SELECT inventory.restock('cold', 100000, 'po-2');
});

# four clients, 1500 calls each (more than the 3000 units in stock)
my $clients = 4;
my $calls = 1500;
my (@handles, @outputs);
for my $c (1 .. $clients)
{
	my $file = "${PostgreSQL::Test::Utils::tmp_check}/client$c.sql";
	open my $fh, '>', $file or die $!;
	for my $i (1 .. $calls)
	{
		my $sku = $i % 3 ? 'flash' : 'cold';
		print $fh "SELECT 'c$c-$i', status FROM inventory.deduct('$sku', 1, 'c$c-$i');\n";
	}
	close $fh;
	my $out = '';
	push @outputs, \$out;
	push @handles, IPC::Run::start(
		[ 'psql', '-X', '-At', '-F', ' ', '-v', 'ON_ERROR_STOP=1',
		  '-d', $node->connstr('postgres'), '-f', $file ],
		'>', \$out, '2>', \my $err);
}

# let the load run (until many deductions are in), then crash the server
$node->poll_query_until('postgres',
	"SELECT count(*) > 1000 FROM inventory.ledger WHERE op = 'deduct'")
  or die 'the load did not start';
$node->stop('immediate');
$_->finish for @handles;

my %acked;
for my $out (@outputs)
{
	for my $line (split /\n/, $$out)
	{
		my ($key, $status) = split / /, $line;
		$acked{$key} = 1 if defined $status && $status eq 'ok';
	}
}
cmp_ok(scalar(keys %acked), '>', 0, 'clients saw deductions succeed before the crash');

$node->start;
my $keys = join(',', map { "'$_'" } sort keys %acked);
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM unnest(ARRAY[$keys]::text[]) k
	 WHERE NOT EXISTS (SELECT FROM inventory.ledger l WHERE l.key = k AND l.op = 'deduct')}),
	'0', 'every acknowledged deduction is in the ledger');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'),
	'0', 'reconcile() is empty after the crash');
is($node->safe_psql('postgres', q{
	SELECT 3000 - on_hand = (SELECT -sum(on_hand_delta) FROM inventory.ledger
	                          WHERE sku = 'flash' AND op = 'deduct')
	   AND on_hand >= 0
	  FROM inventory.stock WHERE sku = 'flash'}),
	't', 'the hot sku is not oversold and matches its ledger');

# clients retry every call with the same keys: nothing is applied twice
my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM inventory.ledger');
my $retry = $node->safe_psql('postgres', join('', map {
	"SELECT status FROM inventory.deduct('" . ((split /-/, $_)[1] % 3 ? 'flash' : 'cold') . "', 1, '$_');\n"
} sort keys %acked));
is(scalar(grep { $_ ne 'duplicate' } split /\n/, $retry), 0,
	'retries of acknowledged deductions are duplicates');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.ledger'),
	$before, 'retries wrote nothing');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'),
	'0', 'reconcile() is empty after the retries');

$node->stop;
done_testing();
