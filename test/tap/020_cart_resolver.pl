# Carts across shards that finish without the client (inventory_proxy 1.2).
# Two shard servers hold four partitions; the proxy runs pg_cron, which
# calls inventory_proxy.resolve() once a minute.  A cart whose client died
# half-way (one line sold, the other held) is undone by the scheduled
# resolver within its ttl plus one scheduler interval, with nobody retrying;
# a retry under another inventory_proxy.hold_ttl goes through (the recorded
# ttl is used); cancel() of a pending cart returns every unit; and with one
# shard server down, carts whose key has its home on the other go on, while
# one homed on the stopped server fails with an error that says so.  Held
# carts across shards (reserve_cart): held, confirmed and released whole by
# key, refused, expired by the resolver, finished after a confirm that died,
# cancelled, released before they arrive, and settled in parts (steps on
# their lines, then a whole confirm, release, expiry or undo of the rest);
# a confirm, a step or cancel() cancelled while it holds the cart's key
# lock on the home partition lets go of it.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use InvNode;

my %shard = (a => inventory_node('shard_a'), b => inventory_node('shard_b'));
my @parts = ([ 'a', 'part0' ], [ 'b', 'part1' ], [ 'a', 'part2' ], [ 'b', 'part3' ]);
for my $p (@parts)
{
	my ($s, $db) = @$p;
	$shard{$s}->safe_psql('postgres', "CREATE DATABASE $db");
	$shard{$s}->safe_psql($db, 'CREATE EXTENSION inventory');
}
sub on_part { my ($p, $sql) = @_; return $shard{ $parts[$p][0] }->safe_psql($parts[$p][1], $sql) }

# the proxy, with pg_cron running jobs in background workers
my $proxy = PostgreSQL::Test::Cluster->new('proxy');
$proxy->init;
$proxy->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
});
$proxy->start;
my $options = join(', ', map { "p$_ '" . $shard{ $parts[$_][0] }->connstr($parts[$_][1]) =~ s/'//gr . "'" } 0 .. 3);
$proxy->safe_psql('postgres', qq{
	CREATE EXTENSION inventory_proxy CASCADE;
	CREATE SERVER inventory_shards FOREIGN DATA WRAPPER plproxy OPTIONS ($options);
	CREATE USER MAPPING FOR PUBLIC SERVER inventory_shards;
	ALTER DATABASE postgres SET inventory_proxy.hold_ttl = '3s';
	CREATE EXTENSION pg_cron;
	SELECT cron.schedule('inventory-resolve', '* * * * *', 'SELECT inventory_proxy.resolve()');
});
sub px { return $proxy->safe_psql('postgres', $_[0]) }

# skus and keys by the server their partition lives on
my %part_of = map { split /\|/ } split /\n/, px(q{
	SELECT s || '|' || inventory_proxy.partition_of(s, 4, false)
	  FROM (SELECT 'sku-' || i AS s FROM generate_series(1, 40) i
	        UNION ALL SELECT 'key-' || i FROM generate_series(1, 80) i
	        UNION ALL SELECT 'parted-' || i FROM generate_series(1, 24) i) x});
my @on_a = grep { /^sku/ && $part_of{$_} % 2 == 0 } sort keys %part_of;
my @on_b = grep { /^sku/ && $part_of{$_} % 2 == 1 } sort keys %part_of;
my @home_a = grep { /^key/ && $part_of{$_} % 2 == 0 } sort keys %part_of;
my @home_b = grep { /^key/ && $part_of{$_} % 2 == 1 } sort keys %part_of;
px("SELECT inventory.restock('$_', 100, 'po-$_')") for @on_a[0 .. 3], @on_b[0 .. 3];
sub on_hand
{
	my ($sku) = @_;
	px('SELECT inventory.merge()');
	return px("SELECT on_hand FROM inventory.stock_levels WHERE sku = '$sku'");
}
sub held
{
	my $n = 0;
	$n += on_part($_, q{SELECT count(*) FROM inventory.reservation WHERE state = 'held'}) for 0 .. 3;
	return $n;
}

# A client that died half-way through a cart: the manifest and both holds
# made (what deduct_cart does first), one line confirmed, then nothing.
sub half_sold
{
	my ($key, $l1, $l2) = @_;
	my ($x, $y) = sort ($l1, $l2);
	my $home = $part_of{$key};
	px(qq{SELECT * FROM inventory_proxy.manifest_open($home, '$key',
		inventory_proxy.manifest_lines('{$x,$y}', '{default,default}', '{-1,-1}'), '3s')});
	px(qq{SELECT count(*) FROM inventory_proxy.hold('{$key#0.1,$key#0.2}', '{$x,$y}', '{1,1}',
		'{default,default}', '3s')});
	px(qq{SELECT count(*) FROM inventory_proxy.settle('{$key#0.1}', '{$x}', '{1}', '{default}',
		'{confirm}')});
	return ($x, $y);
}

# 1. the scheduled resolver undoes a half-sold cart nobody retries
my ($x, $y) = half_sold($home_a[0], $on_a[0], $on_b[0]);
is(px("SELECT inventory_proxy.status('$home_a[0]')"), 'pending', 'a half-sold cart is pending');
is(on_hand($x), '99', 'one line sold');
ok($proxy->poll_query_until('postgres', "SELECT inventory_proxy.status('$home_a[0]') = 'undone'"),
	'the resolver pg_cron runs undoes it, with no client');
is(on_hand($x), '100', 'the sold line is refunded');
is(held(), 0, 'nothing is held');
is(px(q{SELECT count(*) FROM cron.job_run_details WHERE status = 'succeeded'
	AND command LIKE '%inventory_proxy.resolve()%'}) > 0 ? 1 : 0, 1, 'by a scheduled run');
is(px("SELECT status FROM inventory.deduct_cart('{$x,$y}', '{1,1}', '$home_a[0]')"), 'ok',
	'a late retry sells the cart in a new attempt');
is(on_hand($x) . ' ' . on_hand($y), '99 99', 'one unit of each line sold, once');
is(px("SELECT inventory_proxy.status('$home_a[0]')"), 'ok', 'and the cart is ok');

# 2. a retry under another hold_ttl: the recorded ttl is used
my ($p, $q) = sort ($on_a[1], $on_b[1]);
my $key = $home_b[0];
px(qq{SELECT * FROM inventory_proxy.manifest_open($part_of{$key}, '$key',
	inventory_proxy.manifest_lines('{$p,$q}', '{default,default}', '{-1,-1}'), '3s')});
px(qq{SELECT count(*) FROM inventory_proxy.hold('{$key#0.1,$key#0.2}', '{$p,$q}', '{1,1}',
	'{default,default}', '3s')});
is($proxy->safe_psql('postgres', qq{
	SET inventory_proxy.hold_ttl = '1 minute';
	SELECT status FROM inventory.deduct_cart('{$p,$q}', '{1,1}', '$key')}), 'ok',
	'a retry under another hold_ttl finishes the cart');
is(on_hand($p) . ' ' . on_hand($q), '99 99', 'each line sold once');

# 3. cancel() of a pending cart returns every unit
($x, $y) = half_sold($home_a[1], $on_a[2], $on_b[2]);
is(px("SELECT status FROM inventory_proxy.cancel('$home_a[1]')"), 'ok', 'cancel() of a pending cart');
is(on_hand($x) . ' ' . on_hand($y) . ' ' . held(), '100 100 0', 'every unit is back, nothing held');
is(px("SELECT inventory_proxy.status('$home_a[1]')"), 'undone', 'the cart is undone');
is(px("SELECT status FROM inventory_proxy.cancel('$home_a[1]')"), 'duplicate', 'a second cancel');
is(px("SELECT status FROM inventory.deduct_cart('{$x,$y}', '{1,1}', '$home_a[1]')"), 'conflict',
	'a retry of a cancelled cart answers conflict');
is(px("SELECT status FROM inventory.deduct_cart('{$x,$y}', '{1,1}', '$home_a[2]')"), 'ok',
	'a finished cart');
is(px("SELECT status FROM inventory_proxy.cancel('$home_a[2]')"), 'conflict',
	'cannot be cancelled');
is(px("SELECT status FROM inventory_proxy.cancel('$home_b[1]')"), 'not_found',
	'a cancel before its cart');
is(px("SELECT status FROM inventory.deduct_cart('{$x,$y}', '{1,1}', '$home_b[1]')"), 'conflict',
	'makes the late cart conflict');
is(px("SELECT inventory_proxy.status('nobody-knows')"), '', 'an unknown key has no status');
# the same with a line on the key's home partition before one elsewhere:
# the late cart's first round held the other line, and lets go of it
my $kc = $home_b[5];
my ($hs) = grep { $part_of{$_} == $part_of{$kc} } sort @on_b[0 .. 3];
my ($os) = grep { $part_of{$_} != $part_of{$kc} && $_ gt $hs } sort @on_a[0 .. 3], @on_b[0 .. 3];
die "no skus for the late cart" unless defined $hs && defined $os;
px("SELECT inventory_proxy.cancel('$kc')");
is(px("SELECT status FROM inventory.deduct_cart('{$hs,$os}', '{1,1}', '$kc')"), 'conflict',
	'a late cart with a line on its home partition conflicts');
my $left = 0;
$left += on_part($_, "SELECT count(*) FROM inventory.reservation WHERE key LIKE '$kc#%' AND state = 'held'")
  for 0 .. 3;
is($left, 0, 'and leaves nothing held');

# 5. held carts across shards (reserve_cart)
my ($h1, $h2) = sort ($on_a[4], $on_b[4]);
px("SELECT inventory.restock('$_', 100, 'po-$_')") for $h1, $h2;
sub reserved
{
	return px("SELECT string_agg(reserved::text, ' ' ORDER BY sku) FROM inventory.stock_levels
		WHERE sku IN ('$h1', '$h2')");
}
# run the resolver until a condition holds (it acts on a cart once its ttl
# has passed)
sub resolved_until
{
	my ($cond) = @_;
	return $proxy->poll_query_until('postgres',
		"WITH r AS MATERIALIZED (SELECT inventory_proxy.resolve() AS n) SELECT n >= 0 AND ($cond) FROM r");
}
sub sqlstate
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $proxy->psql('postgres', $sql, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return $err =~ /ERROR:\s+(\w{5}):/ ? $1 : "none: $out";
}
my $hk = $home_a[10];
is(px("SELECT status FROM inventory.reserve_cart('{$h2,$h1}', '{3,2}', '$hk', '1 hour')"), 'ok',
	'a held cart across shards');
is(reserved(), '2 3', 'holds every line on its shard');
is(px("SELECT inventory_proxy.status('$hk')"), 'held', 'and is held');
is(px("SELECT status FROM inventory.reserve_cart('{$h1,$h2}', '{2,3}', '$hk', '1 hour')"), 'duplicate',
	'a retry is a duplicate');
is(sqlstate("SELECT inventory.reserve_cart('{$h1,$h2}', '{2,4}', '$hk', '1 hour')"), '23505',
	'other lines under its key: the key-reuse error');
is(sqlstate("SELECT inventory.deduct_cart('{$h1,$h2}', '{2,3}', '$hk')"), '23505',
	'a sale under its key: the key-reuse error');
is(px("SELECT status FROM inventory.confirm('$hk')"), 'ok', 'confirm by key');
is(reserved() . ' ' . on_hand($h1) . ' ' . on_hand($h2), '0 0 98 97', 'sells every line');
is(px("SELECT inventory_proxy.status('$hk')"), 'ok', 'and the cart is ok');
is(px("SELECT status FROM inventory.confirm('$hk', sku => '$h2')") . ' '
	  . px("SELECT status FROM inventory.release('$hk')") . ' '
	  . px("SELECT status FROM inventory.reserve_cart('{$h1,$h2}', '{2,3}', '$hk', '1 hour')"),
	'duplicate conflict duplicate', 'then confirm is a duplicate, release a conflict, a retry a duplicate');

$hk = $home_b[10];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '1 hour')");
is(px("SELECT status FROM inventory.release('$hk', sku => '$h1')"), 'ok', 'release by key (and a line\'s sku)');
is(reserved() . ' ' . on_hand($h1) . ' ' . on_hand($h2) . ' ' . px("SELECT inventory_proxy.status('$hk')"),
	'0 0 98 97 undone', 'gives every unit back');
is(px("SELECT status FROM inventory.confirm('$hk')") . ' '
	  . px("SELECT status FROM inventory.release('$hk')") . ' '
	  . px("SELECT status FROM inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '1 hour')"),
	'expired duplicate duplicate', 'then confirm is expired, release and a retry duplicates');

$hk = $home_a[11];
is(px("SELECT status || ' ' || sku FROM inventory.reserve_cart('{$h1,$h2}', '{1,1000}', '$hk')"),
	"insufficient $h2", 'a line short: insufficient, naming it');
is(reserved(), '0 0', 'and nothing stays held');
px("SELECT inventory.restock('$h2', 1000, 'po-more-$h2')");
is(px("SELECT status FROM inventory.reserve_cart('{$h1,$h2}', '{1,1000}', '$hk')"), 'ok',
	'a retry once there is stock holds it');
is(reserved(), '1 1000', 'every line');
is(px("SELECT status FROM inventory_proxy.cancel('$hk')"), 'ok', 'cancel() of a held cart');
is(reserved() . ' ' . px("SELECT inventory_proxy.status('$hk')"), '0 0 undone', 'lets every line go');

$hk = $home_b[11];
is(px("SELECT status FROM inventory.release('$hk')"), 'not_found', 'a release before its cart');
is(px("SELECT status FROM inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk')"), 'conflict',
	'makes the late held cart conflict');
is(reserved(), '0 0', 'holding nothing');
is(sqlstate("SELECT inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$home_a[12]', '0 s')"), '22023',
	'a ttl that is not positive is refused');
is(sqlstate("SELECT inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$home_a[12]', '300000 years')"), '22008',
	'a ttl beyond the timestamps\' range is refused');
is(sqlstate("SET inventory_proxy.hold_ttl = '-1 min';
	SELECT inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$home_a[12]', '1 min')"), '22023',
	'and so is a hold_ttl that is not positive');
is(px("SELECT inventory_proxy.status('$home_a[12]') IS NULL") . ' ' . reserved(), 't 0 0',
	'recording and holding nothing');
is(sqlstate("SELECT inventory_proxy.cancel(NULL)") . ' ' . sqlstate("SELECT inventory_proxy.cancel('')"),
	'22004 22023', 'cancel() checks its key as the calls do');

# equal ttls written differently are one cart
$hk = $home_b[12];
is(px("SELECT status FROM inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '1 day')") . ' '
	  . px("SELECT status FROM inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '24 hours')"),
	'ok duplicate', 'a retry with the ttl written otherwise is a duplicate');
px("SELECT inventory.release('$hk')");

# a release after the cart was refused: a late retry conflicts, as on one node
$hk = $home_a[15];
is(px("SELECT status FROM inventory.reserve_cart('{$h1,$h2}', '{1,100000}', '$hk')") . ' '
	  . px("SELECT status FROM inventory.release('$hk')") . ' '
	  . px("SELECT status FROM inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk')"),
	'insufficient not_found conflict', 'a release after a refused cart makes its retry conflict');

# a call that died after its first round and an undo that did not finish
# (the lines released, the manifest still holding): the retry holds the
# cart under the next attempt's keys
$hk = $home_b[15];
my $lines = "inventory_proxy.manifest_lines('{$h1,$h2}', '{default,default}', '{-1,-1}')
	|| jsonb_build_object('ttl', extract(epoch FROM interval '1 hour'))";
px(qq{SELECT * FROM inventory_proxy.manifest_open($part_of{$hk}, '$hk', $lines, '1 hour')});
px(qq{SELECT count(*) FROM inventory_proxy.hold('{$hk#0.1,$hk#0.2}', '{$h1,$h2}', '{1,1}',
	'{default,default}', '1 hour')});
px(qq{SELECT count(*) FROM inventory_proxy.settle('{$hk#0.1,$hk#0.2}', '{$h1,$h2}', '{1,1}',
	'{default,default}', '{release,release}')});
is(px("SELECT inventory_proxy.status('$hk')"), 'pending', 'a cart still being held is pending');
is(px("SELECT status FROM inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '1 hour')") . ' '
	  . reserved() . ' ' . px("SELECT inventory_proxy.status('$hk')"),
	'ok 1 1 held', 'its retry holds it anew');
is(px("SELECT status FROM inventory.release('$hk')") . ' ' . reserved(), 'ok 0 0', 'and lets go of it');

# ... and one left by a call that died with its lines held: the retry lets
# go of them and holds the cart anew (for its whole ttl)
$hk = $home_a[17];
px(qq{SELECT * FROM inventory_proxy.manifest_open($part_of{$hk}, '$hk', $lines, '1 hour')});
px(qq{SELECT count(*) FROM inventory_proxy.hold('{$hk#0.1,$hk#0.2}', '{$h1,$h2}', '{1,1}',
	'{default,default}', '1 hour')});
is(px("SELECT status FROM inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '1 hour')") . ' '
	  . reserved(), 'ok 1 1', 'a retry of a cart left holding holds it once');
my $states = '';
$states .= on_part($part_of{$_}, "SELECT string_agg(key || ' ' || state, ' ' ORDER BY key)
	FROM inventory.reservation WHERE key LIKE '$hk#%'") . ' ' for $h1, $h2;
is($states, "$hk#0.1 released $hk#1.1 held $hk#0.2 released $hk#1.2 held ", 'under the next attempt');
px("SELECT inventory.release('$hk')");

# holds of a first round whose home partition failed (no manifest), made
# for a shorter time than this cart's: a retry does not count them as its
# lines (they would expire before the cart), and holds the cart anew
$hk = $home_a[18];
px(qq{SELECT count(*) FROM inventory_proxy.hold('{$hk#0.1,$hk#0.2}', '{$h1,$h2}', '{1,1}',
	'{default,default}', '1 minute')});
is(px("SELECT status FROM inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '1 hour')") . ' '
	  . reserved(), 'ok 1 1', 'a cart meeting earlier, shorter holds of its lines holds them anew');
$states = '';
$states .= on_part($part_of{$_}, "SELECT string_agg(key || ' ' || state, ' ' ORDER BY key)
	FROM inventory.reservation WHERE key LIKE '$hk#%'") . ' ' for $h1, $h2;
is($states, "$hk#0.1 released $hk#1.1 held $hk#0.2 released $hk#1.2 held ", 'under the next attempt');
px("SELECT inventory.release('$hk')");

# the lines outlive the cart by hold_ttl (3 s here), whatever a month is
$hk = $home_b[18];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '1 mon')");
my $cart_end = px("SELECT touched_at + ttl FROM inventory_proxy.manifest_of($part_of{$hk}, '$hk')");
my $outlive = '';
$outlive .= on_part($part_of{$_}, "SELECT abs(extract(epoch FROM expires_at - '$cart_end'::timestamptz) - 3) < 1
	FROM inventory.reservation WHERE key LIKE '$hk#%'") . ' ' for $h1, $h2;
is($outlive, 't t ', 'the lines outlive a cart of a month by hold_ttl');
px("SELECT inventory.release('$hk')");

# A held cart sent while a session on the key's home partition holds the
# key's lock (as another call with the key would): it holds its lines
# (those away from that partition), waits for the key; then $meanwhile
# runs in that session, which lets go.
# Returns the cart's answer.
px('CREATE TABLE answers (key text, status text)');
sub cart_behind_lock
{
	my ($key, $meanwhile, $call) = @_;
	$call //= "inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$key', '1 hour')";
	my $holder = $shard{ $parts[ $part_of{$key} ][0] }->background_psql($parts[ $part_of{$key} ][1]);
	$holder->query_safe("SELECT pg_advisory_lock(1769365621, hashtext('$key'))");
	my $waiter = $proxy->background_psql('postgres');
	# its answer, or its error's SQLSTATE
	$waiter->query_until(qr/sent/, qq{SET inventory_proxy.hold_ttl = '1 min';
		\\echo sent
		DO \$\$BEGIN
			INSERT INTO answers SELECT '$key', status FROM $call;
		EXCEPTION WHEN OTHERS THEN
			INSERT INTO answers VALUES ('$key', SQLSTATE);
		END\$\$;
	});
	ok($proxy->poll_query_until('postgres', q{SELECT count(*) > 0 FROM pg_stat_activity
		WHERE query LIKE 'DO %INSERT INTO answers%' AND wait_event = 'PgSleep'}), "$key: the cart waits for its key");
	$holder->query_safe($meanwhile) if $meanwhile;
	$holder->quit;
	ok($proxy->poll_query_until('postgres', "SELECT count(*) = 1 FROM answers WHERE key = '$key'"),
		"$key: and goes on once the key is free");
	$waiter->quit;
	return px("SELECT status FROM answers WHERE key = '$key'");
}

# a new cart answers ok for the lines it held while it waited
$hk = $home_a[16];
is(cart_behind_lock($hk) . ' ' . reserved(), 'ok 1 1', 'a new cart that waited for its key: ok');
px("SELECT inventory.release('$hk')");

# another call with the key held the cart meanwhile, counting this one's
# holds as its lines: they stay (a key whose home partition holds neither
# line, so that this call's first round holds both)
my @away = grep { my $k = $_; !grep { $part_of{$_} == $part_of{$k} } $h1, $h2 }
  @home_a[ 20 .. $#home_a ], @home_b[ 20 .. $#home_b ];
# what the other call records: the cart held at attempt 0
sub held_manifest
{
	my ($key) = @_;
	return qq{INSERT INTO inventory.cart_manifest (key, lines, ttl, state)
		SELECT '$key', jsonb_build_object('skus', to_jsonb('{$h1,$h2}'::text[]),
		                                  'locations', to_jsonb('{default,default}'::text[]),
		                                  'deltas', to_jsonb('{-1,-1}'::bigint[]),
		                                  'ttl', extract(epoch FROM interval '1 hour')),
		       interval '1 hour', 'held'};
}
$hk = $away[0];
is(cart_behind_lock($hk, held_manifest($hk)) . ' ' . reserved(), 'duplicate 1 1',
	'a cart another call held meanwhile: duplicate, and the lines stay held');
is(px("SELECT status FROM inventory.confirm('$hk')") . ' ' . reserved(), 'ok 0 0',
	'so the cart is confirmed whole');

# the same with a sale under the key: the held cart counted its holds, and
# the sale, refused (another cart's key), leaves them held
$hk = $away[1];
is(cart_behind_lock($hk, held_manifest($hk), "inventory.deduct_cart('{$h1,$h2}', '{1,1}', '$hk')") . ' ' . reserved(),
	'23505 1 1', 'a sale that waited for a held cart\'s key: 23505, and the cart\'s lines stay held');
is(px("SELECT status FROM inventory.confirm('$hk')") . ' ' . reserved(), 'ok 0 0',
	'so the held cart is confirmed whole');

# the expiry is read at each statement, also inside a transaction
$hk = $home_b[16];
is($proxy->safe_psql('postgres', qq{BEGIN;
	SELECT status FROM inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '1 s');
	DO \$\$BEGIN WHILE clock_timestamp() < statement_timestamp() + interval '1.2 s' LOOP
		PERFORM pg_sleep(0.05); END LOOP; END\$\$;
	SELECT status FROM inventory.confirm('$hk');
	COMMIT;}), "ok\nexpired", 'a confirm after the ttl in the transaction that held the cart: expired');
is(reserved(), '0 0', 'every line let go');

# past its ttl: a confirm answers expired, the resolver releases
$hk = $home_a[13];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '1 s')");
ok($proxy->poll_query_until('postgres', "SELECT inventory_proxy.status('$hk') = 'undone'"),
	'a held cart past its ttl is undone');
is(px("SELECT status FROM inventory.confirm('$hk')") . ' ' . reserved(), 'expired 0 0',
	'a confirm then answers expired, and lets its lines go');
$hk = $home_b[13];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '1 s')");
# (the manifest's state, not status(): a held cart past its ttl is undone
# for status() before the resolver has let its lines go)
ok(resolved_until("(SELECT state FROM inventory_proxy.manifest_of($part_of{$hk}, '$hk')) = 'expired'"),
	'the resolver releases one past its ttl');
is(reserved(), '0 0', 'every line let go');
$states = '';
$states .= on_part($part_of{$_}, "SELECT string_agg(state, ' ') FROM inventory.reservation WHERE key LIKE '$hk#%'")
  . ' ' for $h1, $h2;
is($states, 'released released ', 'on both shards');

# a confirm that died after marking the cart and selling one line: whoever
# comes next (a retry, or the resolver) sells the rest
for my $k ($home_a[14], $home_b[14])
{
	$proxy->safe_psql('postgres', qq{SET inventory_proxy.hold_ttl = '1 hour';
		SELECT inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$k', '2 s')});
	px("SELECT inventory_proxy.manifest_mark($part_of{$k}, '$k', 0, 'confirming')");
	px("SELECT count(*) FROM inventory_proxy.settle('{$k#0.1}', '{$h1}', '{1}', '{default}', '{confirm}')");
	is(px("SELECT inventory_proxy.status('$k')"), 'pending', 'a confirm that died leaves it pending');
}
my $sold = on_hand($h1) . ' ' . on_hand($h2);
is(px("SELECT status FROM inventory.confirm('$home_a[14]')"), 'ok', 'a retry of the confirm finishes it');
ok(resolved_until("inventory_proxy.status('$home_b[14]') = 'ok'"), 'the resolver finishes the other');
is(on_hand($h1) . ' ' . on_hand($h2) . ' ' . reserved(), ($sold =~ s/(\d+) (\d+)/$1 . ' ' . ($2 - 2)/er) . ' 0 0',
	'each line sold once');
is(px('SELECT count(*) FROM inventory.reconcile()'), '0', 'reconcile() is empty on every partition');

# held carts across shards settled in parts: a step goes to its line's
# partition under the line's key; a whole confirm, release or expiry then
# settles only what each line still holds, never what a step settled
my @parted = map { "parted-$_" } 1 .. 24;
sub levels { return on_hand($h1) . ' ' . on_hand($h2) . ' ' . reserved() }
# levels after selling a of h1 and b of h2 from $base
sub after { my ($base, $a, $b) = @_; my @n = split / /, $base; return ($n[0] - $a) . ' ' . ($n[1] - $b) . ' 0 0' }
# a cart of $qty units of each line, held, a step selling 1 of the first,
# then a confirm that died after marking it confirming with $rest
sub confirming
{
	my ($k, $qty, $rest) = @_;
	px("SELECT inventory.reserve_cart('{$h1,$h2}', '{$qty,$qty}', '$k', '1 hour')");
	px("SELECT inventory.confirm('$k', 1, '$k-s1', '$h1')");
	px("SELECT inventory_proxy.manifest_mark($part_of{$k}, '$k', 0, 'confirming', false, '$rest')");
}
# the home partition's clock moved past a cart's ttl
sub age { my ($k) = @_; on_part($part_of{$k}, "UPDATE inventory.cart_manifest SET touched_at = touched_at - interval '2 hours' WHERE key = '$k'") }
my $base = levels();
$hk = $parted[0];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{4,3}', '$hk', '1 hour')");
is(px("SELECT status || ' ' || sku || ' ' || location || ' '
	  || (available = (SELECT available FROM inventory.stock_levels WHERE sku = '$h1'))
	  FROM inventory.confirm('$hk', 1, '$hk-s1', '$h1')"), "ok $h1 default true",
	'a step of a held cart across shards: ok, naming its row and the units available');
is(px("SELECT status FROM inventory.confirm('$hk', 1, '$hk-s1', '$h1')"), 'duplicate', 'its retry is a duplicate');
is(sqlstate("SELECT inventory.confirm('$hk', 2, '$hk-s1', '$h1')"), '23505', 'its key reused: 23505');
is(px("SELECT status FROM inventory.release('$hk', 3, '$hk-s2', '$h2')") . ' '
	  . px("SELECT status || ' ' || available FROM inventory.confirm('$hk', 9, '$hk-s3', '$h1')"),
	'ok insufficient 3', 'a step releasing a line; more than its line holds: insufficient, with what it holds');
is(sqlstate("SELECT inventory.confirm('$hk', 1, '$hk-s4')") . ' '
	  . px("SELECT status FROM inventory.confirm('$hk', 1, '$hk-s4', 'sku-none')"),
	'22023 not_found', 'a step needs a sku, one of the cart\'s lines');
is(levels() . ' ' . px("SELECT inventory_proxy.status('$hk')"), after($base, 1, 0) =~ s/0 0$/3 0 held/r,
	'the cart is still held, with what the steps left');
is(px("SELECT status FROM inventory.confirm('$hk')") . ' ' . levels(), 'ok ' . after($base, 4, 0),
	'a whole confirm sells only the rest');
is(px("SELECT status FROM inventory.confirm('$hk')") . ' ' . px("SELECT status FROM inventory.release('$hk')")
	  . ' ' . px("SELECT status FROM inventory.confirm('$hk', 1, '$hk-s5', '$h1')")
	  . ' ' . px("SELECT inventory_proxy.status('$hk')"),
	'duplicate conflict insufficient ok', 'then: duplicate, conflict, a step insufficient, the cart ok');

$base = levels();
$hk = $parted[1];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{2,2}', '$hk', '1 hour')");
px("SELECT inventory.confirm('$hk', 1, '$hk-s1', '$h2')");
is(px("SELECT status FROM inventory.release('$hk')") . ' ' . levels() . ' ' . px("SELECT inventory_proxy.status('$hk')"),
	'ok ' . after($base, 0, 1) . ' undone', 'a whole release lets the rest go, the step\'s sale stays');

$hk = $parted[2];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '1 hour')");
px("SELECT inventory.release('$hk', 1, '$hk-s$_', '$_')") for $h1, $h2;
is(px("SELECT status FROM inventory.confirm('$hk')") . ' ' . px("SELECT status FROM inventory.release('$hk')"),
	'expired duplicate', 'every unit released by steps: a confirm is expired, a release a duplicate');

$base = levels();
$hk = $parted[3];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{2,2}', '$hk', '1 hour')");
px("SELECT inventory.confirm('$hk', 1, '$hk-s1', '$h1')");
age($hk);
ok(resolved_until("(SELECT state FROM inventory_proxy.manifest_of($part_of{$hk}, '$hk')) = 'expired'"),
	'the resolver expires a cart settled in part');
is(levels(), after($base, 1, 0), 'letting the rest go; the step\'s sale stays');
$hk = $parted[4];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{2,2}', '$hk', '1 hour')");
px("SELECT inventory.confirm('$hk', 1, '$hk-s1', '$h1')");
age($hk);
is(px("SELECT status FROM inventory.confirm('$hk', 1, '$hk-s2', '$h1')") . ' ' . levels(), 'expired ' . after($base, 2, 0),
	'a step past the cart\'s ttl: expired, and the cart expires');

# a confirm that died after selling one line's rest: a step finishes it
# first, the resolver finishes another; one whose other line's hold ran out
# (before the confirm began, here: the resolver may run at any time) is
# undone, refunding only what it sold
$base = levels();
for my $k ($parted[5], $parted[6], $parted[7])
{
	px("SELECT inventory.reserve_cart('{$h1,$h2}', '{3,3}', '$k', '1 hour')");
	px("SELECT inventory.confirm('$k', 1, '$k-s1', '$h1')");
	on_part($part_of{$h2}, "UPDATE inventory.reservation SET expires_at = now() - interval '1 s' WHERE key = '$k#0.2';
		SELECT inventory.expire()") if $k eq $parted[7];
	px("SELECT inventory_proxy.manifest_mark($part_of{$k}, '$k', 0, 'confirming', false, '{2,3}')");
	px("SELECT count(*) FROM inventory_proxy.settle('{$k#0.1}', '{$h1}', '{2}', '{default}', '{sell}')");
}
is(px("SELECT status || ' ' || available FROM inventory.release('$parted[5]', 1, '$parted[5]-s2', '$h2')"),
	'insufficient 0', 'a step on a cart being confirmed: the confirm is finished first');
# (by this call, or by the scheduled resolver first)
is(px("SELECT status FROM inventory.confirm('$parted[7]')") . ' ' . px("SELECT inventory_proxy.status('$parted[7]')")
	  . ' ' . px("SELECT status FROM inventory.confirm('$parted[7]')"),
	'expired undone expired', 'a confirm whose other line\'s hold ran out is undone: expired, and so is the next');
ok(resolved_until("inventory_proxy.status('$parted[6]') = 'ok'"), 'the resolver finishes a confirm that died');
is(levels(), after($base, 7, 6), 'each cart\'s step sold once, the two confirms finished, the third refunded');

# past its ttl, a cart whose every unit steps sold: a step's retry is a
# duplicate, a confirm too, and the cart is ok
$base = levels();
$hk = $parted[9];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '1 hour')");
px("SELECT inventory.confirm('$hk', 1, '$hk-s$_', '$_')") for $h1, $h2;
age($hk);
is(px("SELECT status FROM inventory.confirm('$hk', 1, '$hk-s$h1', '$h1')") . ' '
	  . px("SELECT status FROM inventory.confirm('$hk')") . ' '
	  . px("SELECT status FROM inventory.release('$hk')") . ' ' . px("SELECT inventory_proxy.status('$hk')"),
	'duplicate duplicate conflict ok', 'past the ttl, every unit sold by steps: a step\'s retry and a confirm are duplicates');
# a step on a cart released or cancelled whole: nothing left to settle
for my $k ($parted[10], $parted[11])
{
	px("SELECT inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$k', '1 hour')");
	px($k eq $parted[10] ? "SELECT inventory.release('$k')" : "SELECT inventory_proxy.cancel('$k')");
	is(px("SELECT status || ' ' || available FROM inventory.confirm('$k', 1, '$k-s1', '$h1')"), 'insufficient 0',
		'a step after ' . ($k eq $parted[10] ? 'a release' : 'cancel()') . ': insufficient');
}
# cancel() of a confirm that sold every line but died before its ok mark:
# it is complete (conflict, the cart ok), as a sale's attempt
$hk = $parted[12];
confirming($hk, 2, '{1,2}');
px("SELECT count(*) FROM inventory_proxy.settle('{$hk#0.1,$hk#0.2}', '{$h1,$h2}', '{1,2}', '{default,default}', '{sell,sell}')");
is(px("SELECT status FROM inventory_proxy.cancel('$hk')") . ' ' . px("SELECT inventory_proxy.status('$hk')"),
	'conflict ok', 'cancel() of a confirm that sold every line: conflict, and the cart is ok');
is(levels(), after($base, 3, 3), 'each sold once, nothing refunded');

# a step that went on after its call lost the key's lock (its proxy died)
# settles part of a line after a confirm read what the lines hold: the
# confirm sells what the line holds then
$base = levels();
$hk = $parted[13];
confirming($hk, 3, '{2,3}');
on_part($part_of{$h2}, "SELECT inventory.release('$hk#0.2', 1, '$hk-stray', '$h2')");
is(px("SELECT status FROM inventory.confirm('$hk')") . ' ' . levels(), 'ok ' . after($base, 3, 2),
	'a confirm that finds a line settled in part meanwhile sells what it holds');
# ... but a line that holds nothing any more may have been let go whole
# (by a release whose call died, its statement going on): undone
$base = levels();
$hk = $parted[17];
confirming($hk, 3, '{2,3}');
on_part($part_of{$h2}, "SELECT inventory.release('$hk#0.2')");
is(px("SELECT status FROM inventory.confirm('$hk')") . ' ' . levels(), 'expired ' . after($base, 1, 0),
	'a confirm that finds a line let go whole is undone (the step\'s sale stays)');
# a release that died after marking the cart and letting one line go: a
# confirm cannot begin, and the next call lets go of the rest
$hk = $parted[18];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{2,2}', '$hk', '1 hour')");
px("SELECT inventory.confirm('$hk', 1, '$hk-s1', '$h1')");
px("SELECT inventory_proxy.manifest_mark($part_of{$hk}, '$hk', 0, 'released', false, '{1,0}')");
on_part($part_of{$h1}, "SELECT inventory.release('$hk#0.1')");
is(px("SELECT status FROM inventory.confirm('$hk')") . ' ' . levels(), 'expired ' . after($base, 2, 0),
	'a confirm after a release that died midway: expired, nothing more sold, every line let go');

# a release cut off midway (one line let go, the cart not marked yet): the
# first step finds it so, and the cart is let go
$base = levels();
$hk = $parted[19];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{2,2}', '$hk', '1 hour')");
on_part($part_of{$h1}, "SELECT inventory.release('$hk#0.1')");
is(px("SELECT status || ' ' || available FROM inventory.release('$hk', 1, '$hk-s1', '$h2')") . ' '
	  . px("SELECT status FROM inventory.confirm('$hk')") . ' ' . levels(),
	'insufficient 0 expired ' . after($base, 0, 0), 'a step after a release cut off midway: insufficient, nothing sold');
# a line of a cart settled in parts ran out on its shard before the cart's
# ttl (that shard's clock ahead): a confirm answers expired
$hk = $parted[20];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{2,2}', '$hk', '1 hour')");
px("SELECT inventory.confirm('$hk', 1, '$hk-s1', '$h1')");
on_part($part_of{$h2}, "UPDATE inventory.reservation SET expires_at = now() - interval '1 s' WHERE key = '$hk#0.2';
	SELECT inventory.expire()");
is(px("SELECT status FROM inventory.confirm('$hk')") . ' ' . levels(), 'expired ' . after($base, 1, 0),
	'a confirm of a cart settled in parts whose line ran out: expired, only the step sold');
is(px("SELECT status FROM inventory_proxy.cancel('$hk')") . ' ' . px("SELECT status FROM inventory.confirm('$hk')"),
	'ok expired', 'cancel() of it then: ok, and a confirm is still expired');

# what steps sold decides later answers, as on one node
$base = levels();
$hk = $parted[14];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{2,2}', '$hk', '1 hour')");
px("SELECT inventory.confirm('$hk', 1, '$hk-s1', '$h1')");
is(join(' ', map { px("SELECT status FROM inventory.$_('$hk')") } qw(release confirm release)),
	'ok expired duplicate', 'a release after a step sold units: then a confirm is expired, a release a duplicate');
$hk = $parted[15];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{2,2}', '$hk', '1 hour')");
px("SELECT inventory.confirm('$hk', 1, '$hk-s1', '$h1')");
age($hk);
is(join(' ', map { px("SELECT status FROM inventory.$_('$hk')") } qw(confirm confirm release)),
	'expired expired expired', 'past the ttl: expired, whatever steps sold (the cart was not sold whole)');
is(levels(), after($base, 2, 0), 'the steps\' sales stay, the rest is let go');
$hk = $parted[16];
px("SELECT inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '1 hour')");
px("SELECT inventory.release('$hk', 1, '$hk-s$_', '$_')") for $h1, $h2;
age($hk);
ok(resolved_until("(SELECT state FROM inventory_proxy.manifest_of($part_of{$hk}, '$hk')) = 'released'"),
	'the resolver ends a cart whose steps released every unit');
is(px("SELECT status FROM inventory.release('$hk')") . ' ' . px("SELECT status FROM inventory.confirm('$hk')"),
	'duplicate expired', 'then a release is a duplicate, a confirm expired');

# a sku on two lines of a cart (two locations) cannot be named by a step
px("SELECT inventory.restock('$h1', 5, 'po-north-$h1', 'north')");
$hk = $parted[8];
px("SELECT inventory.reserve_cart('{$h1,$h1,$h2}', '{1,1,1}', '$hk', '1 hour', '{default,north,default}')");
is(sqlstate("SELECT inventory.confirm('$hk', 1, '$hk-s1', '$h1')") . ' '
	  . px("SELECT status FROM inventory.confirm('$hk', 1, '$hk-s2', '$h2')")
	  . ' ' . px("SELECT status FROM inventory.confirm('$hk')"),
	'0A000 ok ok', 'a step naming a sku on two lines: 0A000; on one line, ok');

# a call cut off while it holds its key's lock on the home partition (its
# statement there waits behind a lock on the manifests, and the proxy's is
# cancelled) lets go of the lock: the next call with the key goes on
sub cut_at_lock
{
	my ($key, $call) = @_;
	my ($s, $db) = @{ $parts[ $part_of{$key} ] };
	my $holder = $shard{$s}->background_psql($db);
	$holder->query_safe('BEGIN; LOCK TABLE inventory.cart_manifest IN ACCESS EXCLUSIVE MODE');
	my $waiter = $proxy->background_psql('postgres', on_error_stop => 0);
	my $pid = $waiter->query_safe('SELECT pg_backend_pid()');
	$waiter->query_until(qr/sent/, "\\echo sent\nSELECT $call;\n");
	ok($shard{$s}->poll_query_until($db, qq{SELECT count(*) = 1 FROM pg_locks l
		JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.classid = 1769365621 AND l.objid = hashtext('$key')::oid
		  AND l.granted AND a.wait_event_type = 'Lock'}),
		"$key: the call has the key's lock and waits on the home partition");
	px("SELECT pg_cancel_backend($pid)");
	ok($proxy->poll_query_until('postgres', "SELECT state = 'idle' FROM pg_stat_activity WHERE pid = $pid"),
		"$key: the call is cancelled");
	my $locks = $shard{$s}->safe_psql($db, qq{SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = 1769365621 AND objid = hashtext('$key')::oid});
	$holder->query_safe('COMMIT');
	$holder->quit;
	$waiter->quit;
	return $locks;
}
for my $c ([ 'confirm', "inventory.confirm('$parted[21]')", 'ok' ],
	[ 'a step', "inventory.confirm('$parted[22]', 1, '$parted[22]-s1', '$h1')", 'ok' ],
	[ 'cancel()', "inventory_proxy.cancel('$parted[23]')", 'ok' ])
{
	my ($what, $call, $next) = @$c;
	my ($hk) = $call =~ /'(parted-\d+)'/;
	px("SELECT inventory.reserve_cart('{$h1,$h2}', '{1,1}', '$hk', '1 hour')");
	is(cut_at_lock($hk, $call) . ' ' . px("SELECT status FROM $call"), "0 $next",
		"$what cut off with the key's lock: the lock is let go, and its retry answers $next");
}
px("SELECT inventory.confirm('$_')") for @parted[ 21, 22 ];
is(px('SELECT count(*) FROM inventory.reconcile()'), '0', 'reconcile() is empty on every partition');

# 4. a shard server down: carts homed on the other server go on
# (skus of partitions 0 and 2: a cart across shards, all on shard_a)
my ($c1) = grep { $part_of{$_} == 0 } reverse @on_a;
my ($c2) = grep { $part_of{$_} == 2 } reverse @on_a;
($c1, $c2) = sort ($c1, $c2);
px("SELECT inventory.restock('$_', 100, 'po2-$_')") for $c1, $c2;
$shard{b}->stop('immediate');
is(px("SELECT status FROM inventory.deduct_cart('{$c1,$c2}', '{1,1}', '$home_a[3]')"), 'ok',
	'shard_b down: a cart of shard_a\'s skus homed on shard_a');
my ($ret, $out, $err) = $proxy->psql('postgres',
	"SELECT inventory.deduct_cart('{$c1,$c2}', '{1,1}', '$home_b[2]')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/08006: the home partition of key "$home_b[2]" \(partition \d\) cannot be reached/,
	'one homed on shard_b fails, saying so');
$shard{b}->start;
is(px("SELECT status FROM inventory.deduct_cart('{$c1,$c2}', '{1,1}', '$home_b[2]')"), 'ok',
	'and goes through when it is back');
is(on_part(0, "SELECT count(*) FROM inventory.reservation WHERE key LIKE '$home_b[2]#%' AND state = 'held'")
	+ on_part(2, "SELECT count(*) FROM inventory.reservation WHERE key LIKE '$home_b[2]#%' AND state = 'held'"),
	0, 'nothing of it is left held');

is(px('SELECT count(*) FROM inventory.reconcile()'), '0', 'reconcile() is empty on every partition');

# archive() drops the manifests of carts that finished before its cutoff
px('SELECT inventory.archive(now())');
my $manifests = 0;
$manifests += on_part($_, 'SELECT count(*) FROM inventory.cart_manifest') for 0 .. 3;
is($manifests . ' ' . px("SELECT COALESCE(inventory_proxy.status('$home_a[2]'), 'none')"), '0 none',
	'archive() drops finished carts\' manifests');
my $stock = on_hand($c1) . ' ' . on_hand($c2);
($ret, $out, $err) = $proxy->psql('postgres',
	"SELECT inventory.deduct_cart('{$c1,$c2}', '{1,1}', '$home_a[3]')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/55000: the history of key "$home_a[3]" across shards is archived/,
	'a retry that late is told its outcome cannot be told');
is(on_hand($c1) . ' ' . on_hand($c2) . ' ' . held(), "$stock 0", 'and sells and holds nothing');
is(px('SELECT count(*) FROM inventory.reconcile()'), '0', 'and reconcile() is still empty');
$proxy->stop;
$shard{$_}->stop for keys %shard;
done_testing();
