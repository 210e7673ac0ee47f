# Reservations come back by themselves: the worker expires them in bounded
# batches, each its own transaction, without blocking sales of the row for
# longer than a batch, and finishes the job after being killed.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use InvNode;

my $node = inventory_node('expiry', qq{
restart_after_crash = on
inventory.expire_interval = '200ms'
inventory.expire_batch = 50
});
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory;
	SELECT inventory.restock('quick', 10, 'po-1');
	SELECT inventory.restock('hot', 10, 'po-2');
	SELECT inventory.set_hot('hot');
});

# a 1-second ttl, on an ordinary and on a hot row: nobody calls anything
$node->safe_psql('postgres', q{
	SELECT inventory.reserve('quick', 4, 'q-1', ttl => '1 second');
	SELECT inventory.reserve('hot', 4, 'h-1', ttl => '1 second');
});
is($node->safe_psql('postgres', "SELECT inventory.available('hot', 'default')"), '6',
	'the hot hold is held at first');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 2 FROM inventory.reservation WHERE state = 'expired'}),
	'both holds expired without a client call');
is($node->safe_psql('postgres', "SELECT inventory.available('hot', 'default')"), '10',
	'the hot row has its units back in memory');
is($node->safe_psql('postgres', q{
	SELECT reserved FROM inventory.stock WHERE sku = 'quick'}), '0',
	'the ordinary row has its units back');

# 100,000 expired reservations on one row, made in bulk (consistently: the
# stock row, the keys and the ledger say the same)
$node->safe_psql('postgres', q{
	SET inventory.merged_mode = off;
	BEGIN;
	INSERT INTO inventory.stock (sku, on_hand, reserved, next_expiry)
	VALUES ('bulk', 200000, 100000, now() - interval '1 minute');
	INSERT INTO inventory.ledger (op, key, sku, location, on_hand_delta, call)
	VALUES ('restock', 'bulk-po', 'bulk', 'default', 200000, 'restock');
	INSERT INTO inventory.reservation (key, sku, location, qty, created_at, expires_at, ttl)
	SELECT 'bulk-' || g, 'bulk', 'default', 1, now() - interval '1 hour', now() - interval '1 minute',
	       interval '59 minutes'
	  FROM generate_series(1, 100000) g;
	INSERT INTO inventory.ledger (op, key, sku, location, reserved_delta, call)
	SELECT 'reserve', 'bulk-' || g, 'bulk', 'default', 1, 'reserve' FROM generate_series(1, 100000) g;
	COMMIT;
});

# meanwhile a client sells from the row, never waiting more than 5 s on it
my $file = "${PostgreSQL::Test::Utils::tmp_check}/sell.sql";
open my $fh, '>', $file or die $!;
print $fh "SET lock_timeout = '5s';\n";
print $fh "SELECT status FROM inventory.deduct('bulk', 1, 'sale-$_');\n" for 1 .. 300;
close $fh;
my $out = '';
my $seller = IPC::Run::start([ 'psql', '-X', '-At', '-d', $node->connstr('postgres'),
	'-f', $file ], '>', \$out, '2>', \my $err);

# kill the worker in the middle of the job
$node->poll_query_until('postgres', q{
	SELECT count(*) > 500 FROM inventory.reservation WHERE key LIKE 'bulk-%' AND state = 'expired'})
  or die 'the worker does not expire';
my $worker = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'inventory worker'");
my $done = $node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory.reservation WHERE key LIKE 'bulk-%' AND state = 'expired'});
cmp_ok($done, '<', 100000, "the worker was killed mid-job ($done of 100000 done)");
kill 'KILL', $worker;
$seller->finish;
$node->poll_query_until('postgres', 'SELECT true');

ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM inventory.reservation WHERE key LIKE 'bulk-%' AND state = 'held'}),
	'after the restart the worker finished: all 100,000 released');
my $sold = scalar(grep { $_ eq 'ok' } split /\n/, $out);
my $failed = scalar(grep { /ERROR/ && !/terminat|connection/ } split /\n/, $err);
is($failed, 0, 'no sale waited out its lock_timeout behind the expiry');
cmp_ok($sold, '>', 0, "sales went through during the expiry ($sold)");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory.ledger WHERE op = 'expire' AND key LIKE 'bulk-%'}),
	'100000', 'one ledger row per expired reservation, none twice');
is($node->safe_psql('postgres', "SELECT reserved FROM inventory.stock WHERE sku = 'bulk'"),
	'0', 'nothing is reserved any more');
cmp_ok($node->safe_psql('postgres', 'SELECT expire_passes FROM inventory.worker_status()'),
	'>', 0, 'worker_status() shows the passes');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'),
	'0', 'reconcile() is empty');

$node->stop;
done_testing();
