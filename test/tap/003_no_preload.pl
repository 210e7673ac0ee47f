# Without the library in shared_preload_libraries, CREATE EXTENSION fails
# at once with a clear error and a hint; and in a database that has the
# extension (created while the library was preloaded, the server since
# restarted without it), every call fails so, and nothing crashes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('plain');
$node->init;
$node->start;
my ($ret, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION inventory',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($ret, 0, 'CREATE EXTENSION fails');
like($err, qr/55000: inventory must be loaded via shared_preload_libraries/,
	'CREATE EXTENSION: error names the cause');
like($err, qr/HINT:  Add inventory to shared_preload_libraries/,
	'CREATE EXTENSION: hint says what to do');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_extension WHERE extname = 'inventory'"),
	'0', 'nothing was created');

# 1.1's scripts do not check: the tables of a database made while preloaded
$node->safe_psql('postgres', "CREATE EXTENSION inventory VERSION '1.1'");

for my $call ("inventory.restock('a', 1, 'k')", "inventory.deduct('a', 1, 'k')",
	"inventory.reconcile()", "inventory.merge()")
{
	($ret, $out, $err) = $node->psql('postgres', "SELECT $call",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	isnt($ret, 0, "$call fails");
	like($err, qr/55000: inventory must be loaded via shared_preload_libraries/,
		"$call: error names the cause");
	like($err, qr/HINT:  Add inventory to shared_preload_libraries/,
		"$call: hint says what to do");
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.ledger'), '0',
	'nothing was written');
ok($node->safe_psql('postgres', 'SELECT 1') eq '1', 'the server is still up');

$node->stop;
done_testing();
