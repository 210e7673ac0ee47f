# Every database of a cluster where the extension is installed is served:
# its worker merges, expires and takes merged-mode batches, with no setting.
# Such a database can still be dropped, renamed, used as a template and
# moved to another tablespace without FORCE (its worker stands aside and
# comes back), and a dropped one's hot-row slots are freed; and when
# max_worker_processes is too low, the log says so once, and calls go on.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use InvNode;

# three hot-row slots: one per database's hot row
my $node = inventory_node('databases', "log_min_messages = debug1\ninventory.hot_rows = 3\n");

# Hot deducts outside a transaction block in $db until one is merged (a
# call made while the worker runs a pass takes the transactional path).
sub merges
{
	my ($db, $tag) = @_;
	my $before = $node->safe_psql($db, 'SELECT merged_requests FROM inventory.worker_status()');
	for my $i (1 .. 100)
	{
		$node->safe_psql($db, "SELECT inventory.deduct('hot', 1, '$tag$i')");
		return 1 if $node->safe_psql($db,
			'SELECT merged_requests FROM inventory.worker_status()') > $before;
	}
	return 0;
}

# the worker serving a database, polled until it is there
sub served
{
	my ($db) = @_;
	return $node->poll_query_until($db, q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'inventory worker' AND datname = current_database()});
}

for my $db (qw(shop1 shop2 shop3))
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, q{
		CREATE EXTENSION inventory;
		SELECT inventory.restock('hot', 1000, 'po-1');
		SELECT inventory.restock('cold', 10, 'po-2');
		SELECT inventory.set_hot('hot');
	});
	ok(served($db), "$db has a worker, started by CREATE EXTENSION");
}

# merged mode and expiry in each database, with no client asking
for my $db (qw(shop1 shop2 shop3))
{
	# the first call loads the counter; calls outside a block are merged
	ok(merges($db, 'h'), "$db: merged mode serves it");
	$node->safe_psql($db, "SELECT inventory.reserve('cold', 2, 'r1', ttl => '10 milliseconds')");
	ok($node->poll_query_until($db,
			"SELECT state = 'expired' FROM inventory.reservation WHERE key = 'r1'"),
		"$db: its reservation expired with no call");
}

# DROP, RENAME, TEMPLATE, SET TABLESPACE, without FORCE, while served
my $shop3 = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'shop3'");
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE shop3');
is($ret, 0, 'DROP DATABASE of a served database') or diag $err;
($ret, $out, $err) = $node->psql('postgres', 'ALTER DATABASE shop2 RENAME TO shop2b');
is($ret, 0, 'ALTER DATABASE RENAME of a served database') or diag $err;
($ret, $out, $err) = $node->psql('postgres', 'CREATE DATABASE copy1 TEMPLATE shop1');
is($ret, 0, 'CREATE DATABASE ... TEMPLATE a served database') or diag $err;
my $where = PostgreSQL::Test::Utils::tempdir;
$node->safe_psql('postgres', "CREATE TABLESPACE elsewhere LOCATION '$where'");
($ret, $out, $err) = $node->psql('postgres', 'ALTER DATABASE shop1 SET TABLESPACE elsewhere');
is($ret, 0, 'ALTER DATABASE SET TABLESPACE of a served database') or diag $err;

# the workers come back wherever the database still exists
ok(served('shop1'), 'shop1 is served again');
unlike(slurp_file($node->logfile), qr/database $shop3 does not exist/,
	'no worker tried the dropped database');
ok(served('shop2b'), 'shop2b (renamed) is served again');
is($node->safe_psql('copy1', "SELECT status FROM inventory.deduct('cold', 1, 'c1')"), 'ok',
	'the copy answers calls');
# every slot was loaded (shop1, shop2, shop3): the dropped database's is
# the copy's now
is($node->safe_psql('copy1', "SELECT status FROM inventory.deduct('hot', 1, 'c2')"), 'ok',
	'the copy\'s hot row gets the slot of the dropped database');
ok(served('copy1'), 'the copy is served from its first call');
for my $db (qw(shop1 shop2b copy1))
{
	ok(merges($db, 'again'), "$db: merged mode serves it again");
	is($node->safe_psql($db, 'SELECT count(*) FROM inventory.reconcile()'), '0',
		"$db: reconcile() is empty");
}

# a database opts out: its worker leaves and stays away (new sessions'
# calls, launcher passes), and comes back when the setting is reset
sub unserved
{
	my ($db) = @_;
	return $node->poll_query_until($db, q{
		SELECT count(*) = 0 FROM pg_stat_activity
		 WHERE backend_type = 'inventory worker' AND datname = current_database()});
}
$node->safe_psql('postgres', 'ALTER DATABASE shop1 SET inventory.serve_database = off');
ok(unserved('shop1'), 'shop1 set to serve_database = off: its worker leaves');
my $passes = () = slurp_file($node->logfile) =~ /inventory launcher: looked at/g;
$node->safe_psql('shop1', "SELECT inventory.deduct('cold', 1, 'off$_')") for 1 .. 3;
$node->safe_psql('postgres', 'CREATE DATABASE wake');
$node->safe_psql('wake', 'CREATE EXTENSION inventory');
ok(served('wake'), 'a new database is served meanwhile');
$node->wait_for_log(qr/(?s)(?:inventory launcher: looked at.*){@{[$passes + 1]}}/);
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'inventory worker' AND datname = 'shop1'}), '0',
	'shop1 stays unserved through calls and launcher passes');
is($node->safe_psql('shop1', "SELECT status FROM inventory.deduct('cold', 1, 'off9')"), 'ok',
	'and its calls go on');
$node->safe_psql('postgres', 'ALTER DATABASE shop1 RESET inventory.serve_database');
ok(served('shop1'), 'reset: shop1 is served again');
$node->stop;

# Too few worker slots: the logical replication launcher, ours (serving
# postgres), and workers for two of the three databases
my $small = inventory_node('small_slots', qq{
max_worker_processes = 4
log_min_messages = debug1
});
for my $db (qw(a1 a2 a3))
{
	$small->safe_psql('postgres', "CREATE DATABASE $db");
	$small->safe_psql($db, q{
		CREATE EXTENSION inventory;
		SELECT inventory.restock('hot', 100, 'po-1');
		SELECT inventory.set_hot('hot');
	});
}
my $warning = qr/WARNING:  inventory: no background worker slot is free for the worker of database "a\d"/;
ok($small->wait_for_log($warning), 'a WARNING says a slot is missing');
like(slurp_file($small->logfile),
	qr/DETAIL:  The library needs 4 background worker slots .*max_worker_processes is 4\./,
	'it names max_worker_processes and the number needed');
# more rounds of the launcher, each asked for by a new session's call
my $passes = () = slurp_file($small->logfile) =~ /inventory launcher: looked at/g;
for my $i (1 .. 3)
{
	$small->safe_psql($_, "SELECT inventory.deduct('hot', 1, 'late$i')") for qw(a1 a2 a3);
	$small->wait_for_log(qr/(?s)(?:inventory launcher: looked at.*){@{[$passes + $i]}}/);
}
my $warnings = () = slurp_file($small->logfile) =~ /$warning/g;
is($warnings, 1, 'one WARNING, not one per round');
for my $db (qw(a1 a2 a3))
{
	is($small->safe_psql($db, "SELECT status FROM inventory.deduct('hot', 1, 'go-on')"), 'ok',
		"$db: calls go on");
	is($small->safe_psql($db, 'SELECT count(*) FROM inventory.reconcile()'), '0',
		"$db: reconcile() is empty");
}
$small->stop;

done_testing();
