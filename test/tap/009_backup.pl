# pg_dump / pg_restore of a database that uses the extension, plain and
# custom format, into fresh databases: every row and the ledger's sequence
# position come back, the restored database reconciles, every applied key
# replays as a duplicate that changes nothing, held reservations can still be
# confirmed or expire, a hot row keeps working, and new ledger ids follow the
# old ones.  A restore into a cluster without the library preloaded keeps
# the data, and its calls fail with the documented error.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use InvNode;

# no worker in the restored databases: their steps (merge()) must not race one
my $node = inventory_node('backup', "inventory.serve_all_databases = off\n");
my $tmp = $PostgreSQL::Test::Utils::tmp_check;

# The source database: every kind of call, each applied call kept as SQL in
# an ordinary table (dumped with the rest) so the restore can replay it.
$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql('shop', q{
	CREATE EXTENSION inventory;
	CREATE TABLE applied (call text);
	CREATE FUNCTION run(c text) RETURNS text LANGUAGE plpgsql AS $$
	DECLARE st text;
	BEGIN
		EXECUTE format('SELECT (%s).status', c) INTO st;
		IF st = 'ok' THEN INSERT INTO applied VALUES (c); END IF;
		RETURN st;
	END $$;
	SELECT run($c$inventory.restock('a', 100, 'r-a')$c$);
	SELECT run($c$inventory.restock('b', 50, 'r-b', 'north')$c$);
	SELECT run($c$inventory.restock('h', 1000, 'r-h')$c$);
	SELECT inventory.set_hot('h');
	SELECT run(format('inventory.deduct(%L, 1, %L)', s, 'd-' || s || i))
	  FROM generate_series(1, 30) i, unnest(ARRAY['a', 'h']) s;
	SELECT run($c$inventory.deduct('b', 2, 'd-b', 'north')$c$);
	SELECT run($c$inventory.deduct_cart(ARRAY['a', 'b'], ARRAY[1, 1], 'cart-1', ARRAY['default', 'north'])$c$);
	SELECT run($c$inventory.reserve('a', 3, 'hold-long', '1 day')$c$);
	SELECT run($c$inventory.reserve('h', 2, 'hold-hot', '1 day')$c$);
	SELECT run($c$inventory.reserve('a', 4, 'hold-short', '1 second')$c$);
	SELECT run($c$inventory.reserve('a', 1, 'hold-done', '1 day')$c$);
	SELECT run($c$inventory.confirm('hold-done')$c$);
	SELECT run($c$inventory.reserve('b', 1, 'hold-gone', '1 day', 'north')$c$);
	SELECT run($c$inventory.release('hold-gone')$c$);
	SELECT inventory.release('tomb');
	SELECT run($c$inventory.refund('d-a1', 1, 'rf-1')$c$);
	SELECT run($c$inventory.refund('hold-done', 1, 'rf-2')$c$);
	SELECT run($c$inventory.adjust('b', 60, 'count-1', 'north')$c$);
	SELECT count(*) FROM inventory.apply_bills('[
		{"key": "bill-1", "lines": [{"sku": "a", "delta": -2}, {"sku": "h", "delta": -1}]},
		{"key": "bill-2", "lines": [{"sku": "c", "delta": 7}]}]');
	INSERT INTO applied VALUES
		($c$inventory.apply_bills('[{"key": "bill-1", "lines": [{"sku": "a", "delta": -2}, {"sku": "h", "delta": -1}]}]')$c$),
		($c$inventory.apply_bills('[{"key": "bill-2", "lines": [{"sku": "c", "delta": 7}]}]')$c$);
});
is($node->safe_psql('shop', 'SELECT count(*) FROM inventory.pending') > 0, 1,
	'the source has unmerged hot-row movements');

my @tables = qw(stock ledger reservation pending);
my $counts = join(', ', map { "(SELECT count(*) FROM inventory.$_)" } @tables);
my $source_counts = $node->safe_psql('shop', "SELECT $counts");
my $source_maxid = $node->safe_psql('shop', 'SELECT max(id) FROM inventory.ledger');

$node->command_ok([ 'pg_dump', '-d', $node->connstr('shop'), '-f', "$tmp/shop.sql" ],
	'pg_dump, plain format');
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('shop'), '-f', "$tmp/shop.dump" ],
	'pg_dump, custom format');

# wait until the short hold is overdue (a state, not a time)
$node->poll_query_until('shop', q{
	SELECT statement_timestamp() > expires_at FROM inventory.reservation WHERE key = 'hold-short'})
  or die 'the short hold never became overdue';

$node->safe_psql('postgres', 'CREATE DATABASE plain_copy');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
	'-d', $node->connstr('plain_copy'), '-f', "$tmp/shop.sql" ], 'restore the plain dump with psql');
$node->safe_psql('postgres', 'CREATE DATABASE custom_copy');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('custom_copy'),
	"$tmp/shop.dump" ], 'restore the custom dump with pg_restore');

for my $db (qw(plain_copy custom_copy))
{
	is($node->safe_psql($db, "SELECT $counts"), $source_counts,
		"$db: every table has the source's rows");
	is($node->safe_psql($db, 'SELECT count(*) FROM inventory.reconcile()'), '0',
		"$db: reconcile() is empty");

	is($node->safe_psql($db, 'SELECT inventory.expire()'), '1',
		"$db: the overdue reservation expires");
	my $ledger = $node->safe_psql($db, 'SELECT count(*) FROM inventory.ledger');
	my $replay = $node->safe_psql($db, q{
		CREATE FUNCTION pg_temp.replay(c text) RETURNS text LANGUAGE plpgsql AS $$
		DECLARE st text;
		BEGIN
			IF c LIKE 'inventory.apply_bills%' THEN
				EXECUTE format('SELECT status FROM %s', c) INTO st;
			ELSE
				EXECUTE format('SELECT (%s).status', c) INTO st;
			END IF;
			RETURN st;
		END $$;
		SELECT string_agg(DISTINCT pg_temp.replay(call), ',') FROM applied});
	is($replay, 'duplicate', "$db: every applied call replays as duplicate");
	is($node->safe_psql($db, 'SELECT count(*) FROM inventory.ledger'), $ledger,
		"$db: the replays wrote nothing");
	is($node->safe_psql($db, q{SELECT status FROM inventory.reserve('a', 1, 'tomb')}),
		'conflict', "$db: the tombstone still refuses its late reservation");

	is($node->safe_psql($db, q{SELECT status FROM inventory.confirm('hold-long')}), 'ok',
		"$db: a held reservation is confirmed");
	is($node->safe_psql($db, q{SELECT status FROM inventory.release('hold-hot')}), 'ok',
		"$db: a held reservation of the hot row is released");

	is($node->safe_psql($db, q{
		SELECT status || ' ' || available FROM inventory.deduct('h', 5, 'new-hot')}),
		'ok 964', "$db: the hot row keeps working from the restored figures");
	is($node->safe_psql($db, q{SELECT loaded FROM inventory.hot_counters() WHERE sku = 'h'}),
		't', "$db: the hot row's counter was loaded from the restored tables");
	is($node->safe_psql($db, qq{
		SELECT min(id) > $source_maxid FROM inventory.ledger
		 WHERE key IN ('hold-long', 'hold-hot', 'new-hot') AND op <> 'reserve'}),
		't', "$db: new ledger ids follow the restored ones");
	is($node->safe_psql($db, 'SELECT inventory.merge() > 0'), 't',
		"$db: the restored queue merges");
	is($node->safe_psql($db, 'SELECT count(*) FROM inventory.reconcile()'), '0',
		"$db: reconcile() is empty after the new calls");
}

# with inventory.serve_all_databases off, the worker serves inventory.database
# only, and worker_status() says so elsewhere
my ($wret, $wout, $werr) = $node->psql('shop', 'SELECT pid IS NULL FROM inventory.worker_status()');
is($wout, 't', 'worker_status() shows no worker in another database');
like($werr, qr/WARNING:  no inventory worker serves this database now/,
	'and warns there');

# a cluster without the library preloaded: the restore stops at CREATE
# EXTENSION, with the hint; preloaded and restarted, it restores everything
my $bare = PostgreSQL::Test::Cluster->new('bare');
$bare->init;
$bare->start;
$bare->safe_psql('postgres', 'CREATE DATABASE shop');
my ($ret, $out, $err);
IPC::Run::run([ 'pg_restore', '--exit-on-error', '-d', $bare->connstr('shop'),
	"$tmp/shop.dump" ], '>', \$out, '2>', \$err);
like($err, qr/inventory must be loaded via shared_preload_libraries/,
	'restoring into a cluster without the library preloaded stops at CREATE EXTENSION');
like($err, qr/HINT:  Add inventory to shared_preload_libraries/, 'with the hint');
# (no worker in the restored database: it would merge the queue and expire
# the overdue hold before the rows are counted)
$bare->append_conf('postgresql.conf',
	"shared_preload_libraries = 'inventory'\ninventory.serve_all_databases = off\n");
$bare->restart;
$bare->safe_psql('postgres', 'DROP DATABASE shop');
$bare->safe_psql('postgres', 'CREATE DATABASE shop');
$bare->command_ok([ 'pg_restore', '--exit-on-error', '-d', $bare->connstr('shop'),
	"$tmp/shop.dump" ], 'preloaded, the restore goes through');
is($bare->safe_psql('shop', "SELECT $counts"), $source_counts,
	'every row is restored');
is($bare->safe_psql('shop', q{SELECT status FROM inventory.deduct('a', 1, 'x')}), 'ok',
	'and calls work');

$bare->stop;
$node->stop;
done_testing();
