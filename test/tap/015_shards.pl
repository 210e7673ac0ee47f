# The same calls over shards (inventory_proxy, PL/Proxy): two shard servers
# hold four partitions (two databases each) and a third server is the proxy.
# Every call through the proxy; the worker serves every database of a shard;
# a cart across shards with one line short changes nothing anywhere; then a
# shard, and later the proxy, stopped immediately in the middle of
# cross-shard carts: after the restarts and the clients' retries, every cart
# a client saw "ok" is complete on every shard, every other cart holds
# nothing (after retries or the hold's TTL), no unit is sold that no "ok"
# cart took, and reconcile() is empty everywhere.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use InvNode;

# shard_a holds partitions 0 and 2, shard_b 1 and 3
my %shard = (a => inventory_node('shard_a'), b => inventory_node('shard_b'));
my @parts = ([ 'a', 'part0' ], [ 'b', 'part1' ], [ 'a', 'part2' ], [ 'b', 'part3' ]);
for my $p (@parts)
{
	my ($s, $db) = @$p;
	$shard{$s}->safe_psql('postgres', "CREATE DATABASE $db");
	$shard{$s}->safe_psql($db, 'CREATE EXTENSION inventory');
}
sub on_part { my ($p, $sql) = @_; return $shard{ $parts[$p][0] }->safe_psql($parts[$p][1], $sql) }
sub on_all { my ($sql) = @_; return [ map { on_part($_, $sql) } 0 .. 3 ] }

# the worker serves every database where the extension is installed
for my $p (0 .. 3)
{
	my ($s, $db) = @{ $parts[$p] };
	ok($shard{$s}->poll_query_until($db,
		"SELECT pid IS NOT NULL AND database = '$db' FROM inventory.worker_status()"),
		"a worker serves $db on shard_$s");
}

# the proxy: a server without the inventory library
my $proxy = PostgreSQL::Test::Cluster->new('proxy');
$proxy->init;
$proxy->start;
my $options = join(', ', map { "p$_ '" . $shard{ $parts[$_][0] }->connstr($parts[$_][1]) =~ s/'//gr . "'" } 0 .. 3);
$proxy->safe_psql('postgres', qq{
	CREATE EXTENSION inventory_proxy CASCADE;
	CREATE SERVER inventory_shards FOREIGN DATA WRAPPER plproxy OPTIONS ($options);
	CREATE USER MAPPING FOR PUBLIC SERVER inventory_shards;
	ALTER DATABASE postgres SET inventory_proxy.hold_ttl = '5s';
});
sub px { return $proxy->safe_psql('postgres', $_[0]) }

# routing: each sku lives on the one partition PL/Proxy maps it to
my @skus = map { sprintf('sku-%02d', $_) } 1 .. 24;
my $stock = 70;    # 1680 units in all, a little less than the carts below ask
px(join('', map { "SELECT inventory.restock('$_', $stock, 'po-$_');" } @skus));
my %part_of = map { split /\|/ } split /\n/, px(
	"SELECT u.s || '|' || inventory_proxy.partition_of(u.s, 4, false) FROM unnest('{"
	  . join(',', @skus) . "}'::text[]) u(s)");
my $misplaced = 0;
for my $p (0 .. 3)
{
	my %here = map { $_ => 1 } split /\n/, on_part($p, 'SELECT sku FROM inventory.stock');
	$misplaced += grep { ($part_of{$_} == $p) != ($here{$_} // 0) } @skus;
}
is($misplaced, 0, 'every sku is on exactly the partition the proxy computes');
is(scalar(grep { $_ ne '' } @{ on_all('SELECT string_agg(sku, \',\') FROM inventory.stock') }), 4,
	'every partition holds skus');

# two skus on different servers, for the calls below
my ($on_a) = grep { $part_of{$_} % 2 == 0 } @skus;
my ($on_b) = grep { $part_of{$_} % 2 == 1 } @skus;

# every call through the proxy
is(px("SELECT status || ' ' || available FROM inventory.deduct('$on_a', 2, 'd-1')"), 'ok 68', 'deduct');
is(px("SELECT status FROM inventory.deduct('$on_a', 2, 'd-1')"), 'duplicate', 'deduct replayed');
is(px("SELECT status FROM inventory.reserve('$on_b', 3, 'r-1')"), 'ok', 'reserve');
is(px("SELECT status FROM inventory.confirm('r-1')"), 'ok', 'confirm finds the shard of the key');
is(px("SELECT status FROM inventory.confirm('r-1')"), 'duplicate', 'confirm replayed');
is(px("SELECT status FROM inventory.reserve('$on_a', 1, 'r-2')"), 'ok', 'reserve again');
is(px("SELECT status || ' ' || available FROM inventory.release('r-2')"), 'ok 68', 'release');
is(px("SELECT status FROM inventory.release('r-late')"), 'not_found', 'release before its reservation');
is(px("SELECT status FROM inventory.reserve('$on_b', 1, 'r-late')"), 'conflict',
	'the tombstone makes the late reserve conflict');
is(px("SELECT status FROM inventory.confirm('nobody')"), 'not_found', 'confirm of an unknown key');
is(px("SELECT status || ' ' || available FROM inventory.refund('d-1', 1, 'rf-1')"), 'ok 69',
	'refund finds the sale');
is(px("SELECT status || ' ' || available FROM inventory.adjust('$on_a', 45, 'adj-1')"), 'ok 45', 'adjust');
is(px("SELECT available FROM inventory.available('$on_b', NULL)"), '67', 'available over every location');
px("SELECT inventory.set_location('north', 10)");
is(join(',', @{ on_all("SELECT priority FROM inventory.locations WHERE location = 'north'") }),
	'10,10,10,10', 'set_location reaches every partition');
px("SELECT inventory.restock('$on_b', 5, 'po-north', 'north')");
is(px("SELECT status || ' ' || location FROM inventory.deduct_any('$on_b', 2, 'any-1')"), 'ok north',
	'deduct_any allocates by priority on the shard');
is(px("SELECT location || ' ' || qty FROM inventory.allocation('any-1')"), 'north 2', 'allocation');
is(px("SELECT status FROM inventory.reserve_any('$on_b', 1, 'any-2')"), 'ok', 'reserve_any');
is(px("SELECT status FROM inventory.set_hot('$on_a')"), 'ok', 'set_hot');
is(px("SELECT status || ' ' || available FROM inventory.deduct('$on_a', 5, 'hot-1')"), 'ok 40',
	'deduct on the hot row');
is(px("SELECT count(*) FROM inventory.hot_counters() WHERE sku = '$on_a'"), '1', 'hot_counters');
cmp_ok(px('SELECT inventory.merge()'), '>=', 0, 'merge() on every shard');
is(px('SELECT count(*) FROM inventory.stock_levels'), '25', 'stock_levels covers every shard');
is(px("SELECT locations FROM inventory.availability WHERE sku = '$on_b'"), '2', 'availability');
is(px("SELECT status FROM inventory.release('any-2')"), 'ok', 'release of a reserve_any');

# a caller's search_path cannot reach into the calls: an own hashtext()
# first in the path, and a temporary domain named text
px(q{CREATE SCHEMA evil;
	CREATE FUNCTION evil.hashtext(text) RETURNS integer LANGUAGE plpgsql
	  AS $$ BEGIN RAISE EXCEPTION 'evil hashtext ran'; END $$;
	CREATE FUNCTION evil.fail(text) RETURNS boolean LANGUAGE plpgsql
	  AS $$ BEGIN RAISE EXCEPTION 'evil domain check ran'; END $$;});
is($proxy->safe_psql('postgres', qq{
	CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (evil.fail(VALUE));
	SET search_path = evil, pg_catalog;
	SELECT status FROM inventory.deduct('$on_b', 1, 'evil-1');
	SELECT status FROM inventory.deduct_cart('{$on_a,$on_b}', '{1,1}', 'evil-2');
	SELECT status FROM inventory.release('evil-1');}), "ok\nok\nnot_found",
	'a caller\'s own hashtext() and a temporary domain "text" are not used');

# a cart across shards: one line short, and nothing changes anywhere
# every row's available units (unchanged when the worker merges a hot row's queue)
my $levels = 'SELECT string_agg(sku || \' \' || location || \' \' || available, \',\' ORDER BY sku, location) FROM inventory.stock_levels';
my $before = px($levels);
is(px("SELECT status || ' ' || sku FROM inventory.deduct_cart('{$on_a,$on_b}', '{1,1000}', 'cart-x')"),
	"insufficient $on_b", 'a cross-shard cart with one line short is refused, naming the line');
is(px($levels), $before, 'and nothing changed on any shard');
is(join(',', @{ on_all("SELECT count(*) FROM inventory.reservation WHERE state = 'held' AND key LIKE 'cart-x%'") }),
	'0,0,0,0', 'and nothing is held');
px("SELECT inventory.restock('$on_b', 1000, 'po-big')");
is(px("SELECT status FROM inventory.deduct_cart('{$on_a,$on_b}', '{1,1000}', 'cart-x')"), 'ok',
	'the same key succeeds after a restock');
is(px("SELECT status FROM inventory.deduct_cart('{$on_b,$on_a}', '{1000,1}', 'cart-x')"), 'duplicate',
	'its retry, lines in another order, is a duplicate');
my ($ret, $out, $err) = $proxy->psql('postgres',
	"SELECT inventory.deduct_cart('{$on_a,$on_b}', '{1,0}', 'cart-y')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/22023: .*qty must be greater than zero/, 'bad input: the shard\'s own error and SQLSTATE');
is(px(qq{SELECT string_agg(key || ':' || status, ',') FROM inventory.apply_bills('[
	{"key": "bill-1", "lines": [{"sku": "$on_a", "delta": -1}, {"sku": "$on_b", "delta": 2}]},
	{"key": "bill-2", "lines": [{"sku": "$on_a", "delta": -1000}]},
	{"key": "bill-3", "lines": [{"sku": "$on_b", "delta": -1}]},
	{"key": "bill-1", "lines": [{"sku": "$on_a", "delta": -1}, {"sku": "$on_b", "delta": 2}]}]')}),
	'bill-1:ok,bill-2:insufficient,bill-3:ok,bill-1:duplicate', 'apply_bills across shards, in order');
is(px(q{SELECT inventory_proxy.status('bill-1') || ' ' || COALESCE(inventory_proxy.status('bill-3'), 'none')}),
	'ok none', 'a bill across shards has a manifest (ok); one on one shard has none');
is(px('SELECT count(*) FROM inventory.reconcile()'), '0', 'reconcile() through the proxy is empty');

# a proxy that died between the phases, step by step (the hold and settle
# helpers are what deduct_cart runs): lines in row order, keys <key>#<g>.<i>
my ($l1, $l2) = sort ($on_a, $on_b);
sub hold_both
{
	my ($key) = @_;
	return px(qq{SELECT string_agg(status, ',') FROM inventory_proxy.hold('{$key#0.1,$key#0.2}',
	      '{$l1,$l2}', '{1,1}', '{default,default}', '5s')});
}
my $held = q{SELECT count(*) FROM inventory.reservation WHERE state = 'held'};
sub held { my $n = 0; $n += $_ for @{ on_all($held) }; return $n }
# on_hand once the hot row's queue is merged
sub on_hand { px('SELECT inventory.merge()'); px(qq{SELECT string_agg(on_hand::text, ',' ORDER BY sku) FROM inventory.stock_levels
	WHERE location = 'default' AND sku IN ('$l1', '$l2')}) }
my $start = on_hand();
my $take1 = join(',', map { $_ - 1 } split /,/, $start);

# 1. died after the holds: nobody comes back, the holds expire after the TTL
is(hold_both('tcc-1'), 'ok,ok', 'died after phase one: both lines held');
# wait (expiring on every shard once a second) until no hold is left
sub wait_expired
{
	for (1 .. $PostgreSQL::Test::Utils::timeout_default)
	{
		px('SELECT inventory.expire()');
		return 1 if held() == 0;
		sleep 1;
	}
	return 0;
}
ok(wait_expired(), 'the holds expire after the TTL');
is(px("SELECT status FROM inventory.deduct_cart('{$l2,$l1}', '{1,1}', 'tcc-1')"), 'ok',
	'the retry afterwards takes a new attempt and succeeds');
is(on_hand(), $take1, 'one unit of each line sold, once');

# 2. died after confirming one line: the retry confirms the other
hold_both('tcc-2');
px(qq{SELECT count(*) FROM inventory_proxy.settle('{tcc-2#0.1}', '{$l1}', '{1}', '{default}', '{confirm}')});
is(px("SELECT status FROM inventory.deduct_cart('{$l1,$l2}', '{1,1}', 'tcc-2')"), 'ok',
	'died in phase two: the retry finishes the cart');
is(on_hand(), join(',', map { $_ - 2 } split /,/, $start), 'each line sold once more');
is(held(), 0, 'nothing is held');

# 3. died after confirming one line, and the other's hold expired: the retry
# refunds the first and sells the cart in a new attempt
hold_both('tcc-3');
px(qq{SELECT count(*) FROM inventory_proxy.settle('{tcc-3#0.1}', '{$l1}', '{1}', '{default}', '{confirm}')});
ok(wait_expired(), 'the other hold expires');
is(px("SELECT status FROM inventory.deduct_cart('{$l1,$l2}', '{1,1}', 'tcc-3')"), 'ok',
	'the retry undoes the half-sold attempt and sells the cart anew');
is(on_hand(), join(',', map { $_ - 3 } split /,/, $start), 'each line sold exactly once for it');
is(px("SELECT status FROM inventory.deduct_cart('{$l1,$l2}', '{1,1}', 'tcc-3')"), 'duplicate',
	'and its next retry is a duplicate');

# calls with one key take turns: while another session holds the key's
# lock on its home partition, a cart with the key waits hold_ttl, then 55P03
my $home = px("SELECT inventory_proxy.partition_of('lock-cart', 4, false)");
my $holder = $shard{ $parts[$home][0] }->background_psql($parts[$home][1]);
$holder->query_safe("SELECT pg_advisory_lock(1769365621, hashtext('lock-cart'))");
($ret, $out, $err) = $proxy->psql('postgres',
	"SELECT inventory.deduct_cart('{$l1,$l2}', '{1,1}', 'lock-cart')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/55P03: another call with key "lock-cart" is in progress/,
	'a cart whose key another call holds waits, then answers 55P03');
$holder->quit;
is(px("SELECT status FROM inventory.deduct_cart('{$l1,$l2}', '{1,1}', 'lock-cart')"), 'ok',
	'and goes through once the key is free');

# the load: clients sending carts of two or three skus from all partitions
srand(15);
my %cart;
sub cart_sql
{
	my ($key) = @_;
	my ($s, $q) = @{ $cart{$key} };
	return "SELECT '$key', status FROM inventory.deduct_cart('{" . join(',', @$s) . "}', '{"
	  . join(',', @$q) . "}', '$key');\n";
}
# Clients sending carts (going on after errors: a shard may be down);
# $same: every client sends the carts of client 1 (the same keys, at once);
# $barrier: after that many carts each client waits for advisory lock 4242
# of the proxy (held by the test) before it goes on
sub load
{
	my ($phase, $clients, $carts, $same, $barrier) = @_;
	my @scripts;
	for my $c (1 .. $clients)
	{
		for my $i (1 .. $carts)
		{
			$scripts[ $c - 1 ] .= "SELECT pg_advisory_lock_shared(4242), pg_advisory_unlock_shared(4242);\n"
			  if defined $barrier && $i == $barrier + 1;
			my $key = $same ? "$phase-1-$i" : "$phase-$c-$i";
			if (!$same || $c == 1)
			{
				my %pick;
				$pick{ $skus[ int(rand(@skus)) ] } = 1 + int(rand(2)) while keys %pick < 2 + int(rand(2));
				$cart{$key} = [ [ sort keys %pick ], [ map { $pick{$_} } sort keys %pick ] ];
			}
			$scripts[ $c - 1 ] .= cart_sql($key);
		}
	}
	return start_clients($proxy, 'postgres', $phase, \@scripts, on_error_stop => 0);
}
my %status;
sub collect { $status{ $_->[0] } = $_->[1] for finish_clients($_[0]) }
# every cart without an answer is retried with its key until it gets one
sub retry_unanswered
{
	my ($phase, $n) = @_;
	my $retried = 0;
	for my $key (grep { /^$phase-/ && !defined $status{$_} } sort keys %cart)
	{
		my ($k, $st) = split / /, $proxy->safe_psql('postgres', cart_sql($key), extra_params => [ '-F', ' ' ]);
		$status{$key} = $st eq 'duplicate' ? 'ok (on retry)' : $st;
		$retried++;
	}
	return $retried;
}
my $confirmed = q{SELECT count(*) FROM inventory.reservation WHERE state = 'confirmed'};

# a shard stopped immediately in the middle of the carts: the clients wait
# at a barrier after 15 carts each, the shard stops, and they go on
my $holder = IPC::Run::start(
	[ 'psql', '-X', '-d', $proxy->connstr('postgres'), '-c',
	  'SELECT pg_advisory_lock(4242), pg_sleep(600)' ], '>', \my $hout, '2>', \my $herr);
$proxy->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted})
  or die 'no barrier';
my $load = load('A', 4, 60, 0, 15);
$proxy->poll_query_until('postgres', q{
	SELECT count(*) = 4 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted})
  or die 'the clients did not reach the barrier';
$shard{b}->stop('immediate');
$proxy->safe_psql('postgres', q{
	SELECT pg_terminate_backend(pid) FROM pg_locks
	 WHERE locktype = 'advisory' AND objid = 4242 AND granted});
$holder->finish;
collect($load);
$shard{b}->start;
my $acked_a = grep { /^A-/ && $status{$_} eq 'ok' } keys %status;
cmp_ok($acked_a, '>', 0, 'clients saw carts succeed before the shard stopped');
cmp_ok(retry_unanswered('A'), '>', 0, 'some carts failed while the shard was down, and were retried');

# the proxy stopped immediately in the middle of the carts
my $base = on_part(0, $confirmed);
$load = load('B', 4, 60);
$shard{a}->poll_query_until('part0', "SELECT ($confirmed) > $base + 10") or die 'the load did not start';
$proxy->stop('immediate');
collect($load);
$proxy->start;
retry_unanswered('B');
# two clients sending the same carts (the same keys) at the same time: the
# calls with one key take turns, and no cart is sold twice
my %answers;
push @{ $answers{ $_->[0] } }, $_->[1] for finish_clients(load('C', 2, 40, 1));
my @twice = grep { (grep { $_ eq 'ok' } @{ $answers{$_} }) > 1 } keys %answers;
is("@twice", '', 'the same cart sent twice at once is sold once (never two ok)');
my @unpaired = grep { my @a = sort @{ $answers{$_} }; "@a" eq 'duplicate duplicate' } keys %answers;
is("@unpaired", '', 'and a duplicate always follows an ok');
$status{$_} = (grep { $_ eq 'ok' } @{ $answers{$_} }) ? 'ok' : $answers{$_}[0] for keys %answers;
is(scalar(grep { /^C-/ } keys %status), 40, 'both clients answered every cart');

is(scalar(grep { !defined $status{$_} } keys %cart), 0, 'every cart has an answer after the retries');
my %tally;
$tally{ $status{$_} }++ for keys %cart;
note(join(', ', map { "$_: $tally{$_}" } sort keys %tally));
note('holds left by the stops: ' . held());
px('SELECT inventory.merge()');
is(scalar(grep { $status{$_} !~ /^(ok|ok \(on retry\)|insufficient)$/ } keys %cart), 0,
	'every answer is ok or insufficient');

# holds nobody finished expire after inventory_proxy.hold_ttl
ok(wait_expired(), 'every hold left is gone after the TTL');

# every ok cart is complete on every shard, nothing else is sold
my %sold_expected;
for my $key (grep { $status{$_} =~ /^ok/ } keys %cart)
{
	my ($s, $q) = @{ $cart{$key} };
	$sold_expected{ $s->[$_] } += $q->[$_] for 0 .. $#$s;
}
my %sold = map { split /\|/ } split /\n/, px(qq{
	SELECT sku || '|' || ($stock - on_hand) FROM inventory.stock_levels WHERE sku LIKE 'sku-%'});
my %refund_or_extra = ($on_a => 1, $on_b => 1);
my @wrong = grep { !$refund_or_extra{$_} && ($sold{$_} // 0) != ($sold_expected{$_} // 0) } @skus;
is("@wrong", '', 'every sku sold exactly what the ok carts took (nothing lost, nothing twice)');
cmp_ok(scalar(grep { $status{$_} eq 'insufficient' } keys %cart), '>', 0,
	'the load ran the stock out (some carts refused)');
is(px('SELECT count(*) FROM inventory.stock_levels WHERE on_hand < 0 OR available < 0'), '0',
	'nothing is oversold');

# retries of every ok cart are duplicates and change nothing
my $sold_before = px($levels);
my @not_dup;
for my $key (grep { $status{$_} =~ /^ok/ } sort keys %cart)
{
	my ($k, $st) = split / /, $proxy->safe_psql('postgres', cart_sql($key), extra_params => [ '-F', ' ' ]);
	push @not_dup, $key if $st ne 'duplicate';
}
is("@not_dup", '', 'a retry of every ok cart answers duplicate');
is(px($levels), $sold_before, 'and changes nothing');

is(join(',', @{ on_all('SELECT count(*) FROM inventory.reconcile()') }), '0,0,0,0',
	'reconcile() is empty on every partition');

# calls by key, routed by the sku named: with shard_b down, the calls whose
# rows live on shard_a go on; asking every partition (no sku) cannot
px("SELECT inventory.restock('$on_a', 10, 'po-routed')");
is(px("SELECT status FROM inventory.reserve('$on_a', 3, 'rt-1')"), 'ok', 'reserve before the outage');
is(px("SELECT status FROM inventory.deduct('$on_a', 1, 'rt-sale')"), 'ok', 'a sale before the outage');
$shard{b}->stop('immediate');
is(px("SELECT status FROM inventory.reserve('$on_a', 2, 'rt-2')"), 'ok',
	'shard_b down: a reserve on shard_a');
is(px("SELECT status FROM inventory.confirm('rt-2', sku => '$on_a')"), 'ok', 'a routed confirm');
is(px("SELECT status FROM inventory.confirm('rt-1', 1, 'rt-1-s1', '$on_a')"), 'ok', 'a routed step');
is(px("SELECT status FROM inventory.release('rt-1', sku => '$on_a')"), 'ok', 'a routed release');
is(px("SELECT status FROM inventory.refund('rt-sale', 1, 'rt-rf', '$on_a')"), 'ok', 'a routed refund');
($ret, $out, $err) = $proxy->psql('postgres', "SELECT inventory.confirm('rt-2')");
isnt($ret, 0, 'a confirm without a sku asks every partition, and fails while one is down');
$shard{b}->start;
is(px("SELECT status FROM inventory.confirm('rt-2')"), 'duplicate', 'once it is back, it answers');
is(px("SELECT status FROM inventory.reserve_cart('{$on_a}', '{1}', 'rt-cart')"), 'ok',
	'reserve_cart of one partition\'s lines');
px("SELECT inventory.restock('$on_b', 10, 'po-routed-b')");
is(px("SELECT status FROM inventory.reserve_cart('{$on_a,$on_b}', '{1,1}', 'rt-cart2')"), 'ok',
	'reserve_cart across shards');
is(px("SELECT status FROM inventory.confirm('rt-cart2')") . ' ' . px("SELECT inventory_proxy.status('rt-cart2')"),
	'ok ok', 'confirmed whole by its key');

# a partition count that is not a power of two: modular_mapping
my $three = join(', ', map { "p$_ '" . $shard{ $parts[$_][0] }->connstr($parts[$_][1]) =~ s/'//gr . "'" } 0 .. 2);
$proxy->safe_psql('postgres', 'CREATE DATABASE proxy3');
$proxy->safe_psql('proxy3', qq{
	CREATE EXTENSION inventory_proxy CASCADE;
	CREATE SERVER inventory_shards FOREIGN DATA WRAPPER plproxy OPTIONS ($three, modular_mapping '1');
	CREATE USER MAPPING FOR PUBLIC SERVER inventory_shards;
	SELECT inventory.restock('m-' || i, 5, 'po-m-' || i) FROM generate_series(1, 30) i;
});
my %part3 = map { split /\|/ } split /\n/, $proxy->safe_psql('proxy3',
	"SELECT 'm-' || i || '|' || inventory_proxy.partition_of('m-' || i, 3, true) FROM generate_series(1, 30) i");
my $wrong3 = 0;
for my $p (0 .. 2)
{
	my %here = map { $_ => 1 } split /\n/, on_part($p, "SELECT sku FROM inventory.stock WHERE sku LIKE 'm-%'");
	$wrong3 += grep { ($part3{$_} == $p) != ($here{$_} // 0) } keys %part3;
}
is($wrong3, 0, 'three partitions with modular_mapping: every sku where the proxy computes');
is($proxy->safe_psql('proxy3', q{
	SELECT status FROM inventory.deduct_cart('{m-1,m-2,m-3,m-4,m-5,m-6}', '{1,1,1,1,1,1}', 'm-cart')}),
	'ok', 'and a cart across them');

done_testing();
