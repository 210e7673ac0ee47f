# An immediate shutdown (a crash, as far as the database is concerned) in the
# middle of many concurrent deductions and held carts: after the restart every
# deduction that a client saw as "ok" is in the ledger, every held cart seen
# held holds all its lines (or was settled whole), every confirm seen is whole,
# nothing is oversold, the invariants hold, and clients that retry with the
# same keys apply nothing twice.
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
	SELECT inventory.restock(s, 100000, 'po-' || s) FROM unnest('{ca,cb,cc}'::text[]) s;
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
# a fifth client holds 3-line carts and confirms each
my $carts = '';
{
	my $file = "${PostgreSQL::Test::Utils::tmp_check}/carts.sql";
	open my $fh, '>', $file or die $!;
	for my $i (1 .. $calls)
	{
		print $fh "SELECT 'reserve hc-$i', status FROM inventory.reserve_cart('{cc,ca,cb}', '{1,2,3}', 'hc-$i');\n";
		print $fh "SELECT 'confirm hc-$i', status FROM inventory.confirm('hc-$i');\n";
	}
	close $fh;
	push @handles, IPC::Run::start(
		[ 'psql', '-X', '-At', '-F', ' ', '-v', 'ON_ERROR_STOP=1',
		  '-d', $node->connstr('postgres'), '-f', $file ],
		'>', \$carts, '2>', \my $err);
}

# let the load run (until many deductions and some held carts' confirms
# are in), then crash the server
$node->poll_query_until('postgres',
	"SELECT count(*) FILTER (WHERE op = 'deduct') > 1000 AND count(*) FILTER (WHERE op = 'confirm') > 30
	   FROM inventory.ledger")
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

my (%held, %confirmed);
for my $line (split /\n/, $carts)
{
	my ($what, $key, $status) = split / /, $line;
	next unless defined $status && $status eq 'ok';
	($what eq 'reserve' ? \%held : \%confirmed)->{$key} = 1;
}
cmp_ok(scalar(keys %confirmed), '>', 0, 'held carts were confirmed before the crash');
my $held = join(',', map { "'$_'" } sort keys %held);
my $confirmed = join(',', map { "'$_'" } sort keys %confirmed);
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM unnest(ARRAY[$held]::text[]) k
	 WHERE (SELECT count(*) FILTER (WHERE state IN ('held', 'confirmed', 'expired'))
	          FROM inventory.reservation r WHERE r.key = k) <> 3
	    OR (SELECT count(DISTINCT state) FROM inventory.reservation r WHERE r.key = k) <> 1}),
	'0', 'every cart seen held has its three lines, all in one state');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM unnest(ARRAY[$confirmed]::text[]) k
	 WHERE (SELECT count(*) FILTER (WHERE state = 'confirmed')
	          FROM inventory.reservation r WHERE r.key = k) <> 3
	    OR (SELECT count(*) FROM inventory.ledger l WHERE l.key = k AND l.op = 'confirm') <> 3}),
	'0', 'every confirm seen sold all three lines');
is($node->safe_psql('postgres', q{
	SELECT bool_and(s.on_hand = 100000 - (SELECT coalesce(sum(r.qty), 0) FROM inventory.reservation r
	                                       WHERE r.sku = s.sku AND r.state = 'confirmed')
	            AND s.reserved = (SELECT coalesce(sum(r.qty), 0) FROM inventory.reservation r
	                               WHERE r.sku = s.sku AND r.state = 'held'))
	  FROM inventory.stock s WHERE s.sku IN ('ca', 'cb', 'cc')}),
	't', 'the cart rows hold and sold exactly what their reservations say');

# clients retry every call with the same keys: nothing is applied twice
my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM inventory.ledger');
my $retry = $node->safe_psql('postgres', join('', map {
	"SELECT status FROM inventory.deduct('" . ((split /-/, $_)[1] % 3 ? 'flash' : 'cold') . "', 1, '$_');\n"
} sort keys %acked));
is(scalar(grep { $_ ne 'duplicate' } split /\n/, $retry), 0,
	'retries of acknowledged deductions are duplicates');
$retry = $node->safe_psql('postgres', join('', map {
	"SELECT status FROM inventory.reserve_cart('{cc,ca,cb}', '{1,2,3}', '$_');\n" .
	"SELECT status FROM inventory.confirm('$_');\n"
} sort keys %confirmed));
is(scalar(grep { $_ ne 'duplicate' } split /\n/, $retry), 0,
	'retries of acknowledged held carts and their confirms are duplicates');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.ledger'),
	$before, 'retries wrote nothing');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'),
	'0', 'reconcile() is empty after the retries');

$node->stop;
done_testing();
