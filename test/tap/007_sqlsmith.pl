# sqlsmith, the random query generator, against a database with the
# extension: an unprivileged role with the admin grants of the README (every
# inventory function, read access to the tables) sends random queries for a
# bounded count.  No backend may crash, the role may not write a table, and
# the stock must still reconcile.  INVENTORY_SQLSMITH_QUERIES sets the count
# (default 2000, about 20 s; `scripts/test --long` uses 50000).
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use InvNode;

my $queries = $ENV{INVENTORY_SQLSMITH_QUERIES} || 2000;
my $seed = $ENV{INVENTORY_SQLSMITH_SEED} || 1;

my $node = inventory_node('smith', qq{
restart_after_crash = on
});
$node->safe_psql('postgres', q{
CREATE EXTENSION inventory;
CREATE ROLE smith LOGIN;
GRANT USAGE ON SCHEMA inventory TO smith;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA inventory TO smith;
GRANT SELECT ON ALL TABLES IN SCHEMA inventory TO smith;
ALTER ROLE smith SET statement_timeout = '2s';
SELECT inventory.restock('sku-' || i, 100, 'seed-' || i) FROM generate_series(1, 20) i;
SELECT inventory.set_hot('sku-1', true);
SELECT inventory.reserve('sku-2', 3, 'hold-1', interval '1 hour');
});
my $ledger_before = $node->safe_psql('postgres', 'SELECT count(*) FROM inventory.ledger');

my $conn = 'host=' . $node->host . ' port=' . $node->port . ' dbname=postgres user=smith';
my $out = "$PostgreSQL::Test::Utils::tmp_check/sqlsmith.out";
my $rc = system("sqlsmith --target='$conn' --seed=$seed --max-queries=$queries"
	  . " --verbose >'$out' 2>&1") >> 8;
my $report = slurp_file($out);
my @progress = $report =~ /queries: (\d+)/g;
is($rc, 0, 'sqlsmith ran to its end');
is($progress[-1], $queries, "sqlsmith sent $queries queries (seed $seed)");
my @rates = $report =~ /error rate: ([0-9.]+)/g;
my $rate = $rates[-1];
diag("sqlsmith: $queries queries, error rate " . ($rate // '?'));

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was terminated by exception/,
	'no backend was terminated by a signal');
unlike($log, qr/PANIC/, 'no PANIC in the server log');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server still answers');
like($report, qr/permission denied for table (stock|ledger|reservation|pending)/,
	'writes to the tables were tried and refused');
my $ledger_after = $node->safe_psql('postgres', 'SELECT count(*) FROM inventory.ledger');
diag("ledger rows written through the functions: " . ($ledger_after - $ledger_before));
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'), '0',
	'reconcile() is empty afterwards');

$node->stop;
done_testing();
