# Years of history: archive() while 32 clients sell (no client waits on it or
# fails, nothing is lost or applied twice), the bytes a key costs before and
# after, and the worker archiving on its own with inventory.history_retention.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use InvNode;

my $node = inventory_node('archive', qq{
max_connections = 60
});
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory;
	SELECT inventory.restock('s' || i, 1000000, 'po-' || i) FROM generate_series(1, 1000) i;
	SELECT inventory.restock('hot', 100000000, 'po-hot');
	SELECT inventory.set_hot('hot');
});

# pgbench: deducts over 1,000 ordinary rows and one hot row, keys unique
my $script = "${PostgreSQL::Test::Utils::tmp_check}/sell.sql";
open my $fh, '>', $script or die $!;
print $fh <<'EOF';
\set r random(1, 9000000000000000)
\set s random(1, 1000)
SELECT (inventory.deduct('s' || :s, 1, 'k' || :client_id || '-' || :r)).status;
SELECT (inventory.deduct('hot', 1, 'h' || :client_id || '-' || :r)).status;
EOF
close $fh;
sub pgbench
{
	my ($clients, $seconds) = @_;
	my %run = (out => '', err => '');
	$run{h} = IPC::Run::start(
		[ 'pgbench', '-n', '-M', 'prepared', '-c', $clients, '-j', 2, '-T', $seconds,
		  '-f', $script, $node->connstr('postgres') ],
		'>', \$run{out}, '2>', \$run{err});
	return \%run;
}

# a first load, then what a key costs in the ledger
my $warm = pgbench(8, 5);
$warm->{h}->finish;
my ($keys, $bytes) = split /\|/, $node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE call IS NOT NULL),
	       pg_total_relation_size('inventory.ledger') FROM inventory.ledger});
cmp_ok($keys, '>', 5000, "the first load recorded $keys keys");

# archive everything before now, repeatedly, while 32 clients sell
my $load = pgbench(32, 8);
$node->poll_query_until('postgres',
	"SELECT count(*) >= 32 FROM pg_stat_activity WHERE query LIKE '%inventory.deduct%' AND pid <> pg_backend_pid()")
  or die 'pgbench did not start';
my $folded = 0;
my $passes = 0;
while ($load->{h}->pumpable)
{
	$folded += $node->safe_psql('postgres', 'SELECT inventory.archive(now())');
	$passes++;
	$load->{h}->pump_nb;
	last if $passes > 1000;
}
$load->{h}->finish;
like($load->{out}, qr/number of failed transactions: 0 /, 'no client failed while archive() ran');
cmp_ok($passes, '>', 1, "archive() ran $passes times during the load");
cmp_ok($folded, '>', 0, "and folded $folded ledger rows");
my ($tps) = $load->{out} =~ /tps = ([\d.]+) \(without/;
cmp_ok($tps, '>', 0, "the clients sold on meanwhile ($tps transactions/s)");

# the rest, then the figures
$node->safe_psql('postgres', 'SELECT inventory.merge()');
$node->safe_psql('postgres', 'SELECT inventory.archive(now())');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'), '0',
	'reconcile() is empty after archiving under load');
is($node->safe_psql('postgres', q{
	SELECT count(*) = count(DISTINCT (sku, location)) FROM inventory.ledger WHERE op = 'checkpoint'}),
	't', 'one checkpoint per stock row');
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory.ledger WHERE op <> 'checkpoint'}),
	'0', 'nothing older than the cutoff is left but checkpoints');
# what the keys take: their digests, a tuple header per row, the index; and
# the table's files (which keep the space of rows merged away, for reuse)
$node->safe_psql('postgres', 'VACUUM inventory.archived_key');
my ($archived, $live, $files) = split /\|/, $node->safe_psql('postgres', q{
	SELECT sum(length(digests)) / 16,
	       sum(length(digests) + 40) + pg_relation_size('inventory.archived_key_bucket'),
	       pg_total_relation_size('inventory.archived_key')
	  FROM inventory.archived_key});
my $before = $bytes / $keys;
my $after = $live / $archived;
diag(sprintf('bytes per key: %.0f in the ledger (its call row and indexes); archived: %.1f live, '
	  . '%.1f with the files\' free space (%d keys)', $before, $after, $files / $archived, $archived));
cmp_ok($after, '<=', $before / 4, 'an archived key takes a quarter or less of a recorded one');

# every archived key answers duplicate, whatever the call, and applies nothing
my $ledger = $node->safe_psql('postgres', 'SELECT count(*) FROM inventory.ledger');
my $dups = $node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT (inventory.deduct('s1', 1, k)).status, ',')
	  FROM (SELECT 'po-' || i AS k FROM generate_series(1, 1000) i
	        UNION ALL SELECT 'po-hot') keys});
is($dups, 'duplicate', 'every archived key answers duplicate');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.ledger'), $ledger,
	'and nothing was applied');

# the worker archives on its own, past inventory.history_retention
$node->append_conf('postgresql.conf', "inventory.history_retention = '2s'\n");
$node->reload;
$load = pgbench(8, 4);
$load->{h}->finish;
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM inventory.ledger
	 WHERE op <> 'checkpoint' AND at < now() - interval '4 seconds'}),
	'the worker keeps the ledger to its retention');
cmp_ok($node->safe_psql('postgres', 'SELECT archived FROM inventory.worker_status()'),
	'>', 0, 'worker_status() counts what it archived');
$node->safe_psql('postgres', 'SELECT inventory.merge()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'), '0',
	'reconcile() is empty');

$node->stop;
done_testing();
