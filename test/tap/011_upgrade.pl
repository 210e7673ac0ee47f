# ALTER EXTENSION inventory UPDATE on a populated 1.0 database, under the
# preloaded current library (1.0 -> 1.1 -> 1.2).  The 1.0 tables hold what version 1.0 itself wrote
# for test/fixtures/v1.0-calls.sql (test/fixtures/make-v1.0 remakes them):
# ordinary and hot rows with unmerged queue rows, held, confirmed and
# released reservations, a tombstone, refunds, carts, a stocktake, bills.
# Before the update every call is refused with a hint; after it every row is
# kept, reconcile() is empty, every applied call replays as a duplicate that
# writes nothing, held reservations confirm, release and expire, refunds stay
# capped, the hot row works, and new calls go on.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename;
use InvNode;

my $fixtures = dirname(__FILE__) . '/../fixtures';
# no worker in database shop: the steps after the update must not race one
my $node = inventory_node('upgrade', "inventory.serve_all_databases = off\n");
$node->safe_psql('postgres', "CREATE DATABASE shop");
$node->safe_psql('shop', "CREATE EXTENSION inventory VERSION '1.0'");

# the library serves 1.1 and 1.2: a 1.0 database is refused until updated
my ($ret, $out, $err) = $node->psql('shop', "SELECT inventory.deduct('tea', 1, 'early')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/55000: the inventory extension in this database is older than the loaded library/,
	'a 1.0 database is refused');
like($err, qr/HINT:  Run ALTER EXTENSION inventory UPDATE in this database\./, 'with a hint');

# the rows version 1.0 wrote
for my $t (qw(stock request ledger reservation pending))
{
	$node->safe_psql('shop', "COPY inventory.$t FROM '$fixtures/v1.0/$t.csv' WITH (FORMAT csv)");
}
$node->safe_psql('shop',
	"SELECT setval('inventory.ledger_id_seq', (SELECT max(id) FROM inventory.ledger))");
my $ledger10 = $node->safe_psql('shop', 'SELECT count(*) FROM inventory.ledger');
my $keys10 = $node->safe_psql('shop', 'SELECT count(*) FROM inventory.request');
my $stock10 = $node->safe_psql('shop',
	'SELECT string_agg(sku || location || on_hand || reserved || hot, \',\' ORDER BY sku, location) FROM inventory.stock');

$node->safe_psql('shop', 'ALTER EXTENSION inventory UPDATE');
is($node->safe_psql('shop', "SELECT extversion FROM pg_extension WHERE extname = 'inventory'"),
	'1.2', 'updated to the current version');
is($node->safe_psql('shop',
	'SELECT string_agg(sku || location || on_hand || reserved || hot, \',\' ORDER BY sku, location) FROM inventory.stock'),
	$stock10, 'every stock row is kept');
is($node->safe_psql('shop', 'SELECT count(*) FROM inventory.ledger WHERE call IS NULL OR call <> \'release\' OR sku IS NOT NULL'),
	$ledger10, 'every ledger row is kept');
is($node->safe_psql('shop', 'SELECT count(*) FROM inventory.ledger WHERE call IS NOT NULL'),
	$keys10, 'every key is recorded in the ledger');
is($node->safe_psql('shop', 'SELECT count(*) FROM inventory.reconcile()'), '0',
	'reconcile() is empty after the update');

# every applied call replays as a duplicate that writes nothing
my @calls = grep { /^SELECT/ && !/set_hot|release\('tomb|confirm|release\('hold/ }
  split /\n/, slurp_file("$fixtures/v1.0-calls.sql");
my $ledger = $node->safe_psql('shop', 'SELECT count(*) FROM inventory.ledger');
for my $call (@calls)
{
	my $status = $call =~ /apply_bills/
	  ? $node->safe_psql('shop', ($call =~ s/^SELECT \*/SELECT string_agg(DISTINCT status, ',')/r))
	  : $node->safe_psql('shop', ($call =~ s/^SELECT (inventory\.\w+\(.*\));$/SELECT ($1).status;/r));
	is($status, 'duplicate', "replay: $call");
}
is($node->safe_psql('shop', 'SELECT count(*) FROM inventory.ledger'), $ledger,
	'the replays wrote nothing');
is($node->safe_psql('shop', q{SELECT status FROM inventory.confirm('hold-done')}), 'duplicate',
	'a confirmed reservation confirms again as a duplicate');
is($node->safe_psql('shop', q{SELECT status FROM inventory.reserve('tea', 1, 'tomb-1')}), 'conflict',
	'the tombstone still refuses its late reservation');
my ($r2, $o2, $e2) = $node->psql('shop', q{SELECT inventory.deduct('tea', 9, 'd-1')});
like($e2, qr/idempotency key "d-1" was already used by another call/,
	'a 1.0 key reused with other arguments is the key-reuse error');

# reservations made by 1.0
is($node->safe_psql('shop', q{SELECT status FROM inventory.confirm('hold-long')}), 'ok',
	'a held reservation is confirmed');
is($node->safe_psql('shop', q{SELECT status FROM inventory.release('hold-hot')}), 'ok',
	'a held reservation of the hot row is released');
is($node->safe_psql('shop', q{SELECT status FROM inventory.confirm('hold-short')}), 'expired',
	'an overdue one is expired');
is($node->safe_psql('shop', q{SELECT state FROM inventory.reservation WHERE key = 'hold-short'}),
	'expired', 'and recorded so');

# refunds stay capped: 1 of d-1's 2 units was refunded by 1.0
is($node->safe_psql('shop', q{SELECT status FROM inventory.refund('d-1', 2, 'rf-4')}),
	'insufficient', 'a refund beyond what 1.0 left refundable is refused');
is($node->safe_psql('shop', q{SELECT status FROM inventory.refund('d-1', 1, 'rf-5')}),
	'ok', 'the rest can be refunded');

# the hot row: its counter loads from the updated tables (queue included)
is($node->safe_psql('shop', q{SELECT status || ' ' || available FROM inventory.deduct('hot', 5, 'd-4')}),
	'ok 992', 'the hot row works from its 1.0 figures and queue');
is($node->safe_psql('shop', 'SELECT inventory.merge() > 0'), 't', 'its 1.0 queue merges');

# new calls on ordinary rows, and the invariants at the end
is($node->safe_psql('shop', q{SELECT status || ' ' || available FROM inventory.deduct('tea', 1, 'd-5')}),
	'ok 91', 'a new deduct on an ordinary row');
is($node->safe_psql('shop', q{SELECT status FROM inventory.deduct_cart('{tea,cup}', '{1,1}', 'cart-3')}),
	'ok', 'a new cart');
is($node->safe_psql('shop', q{SELECT status FROM inventory.reserve('mug', 1, 'hold-new')}),
	'ok', 'a new reservation');
is($node->safe_psql('shop', 'SELECT count(*) FROM inventory.reconcile()'), '0',
	'reconcile() is empty at the end');

$node->stop;
done_testing();
