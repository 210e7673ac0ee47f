# A rolling upgrade: the 1.2 library serves a database still at 1.1, with
# 1.1's behaviour, until ALTER EXTENSION inventory UPDATE; so installing the
# new package and restarting never stops a call.  The 1.1 tables hold what
# version 1.1 itself wrote for test/fixtures/v1.1-calls.sql
# (test/fixtures/make-v1.1 remakes them): ordinary, hot and allocated rows,
# holds, a tombstone, refunds, carts, bills, an unmerged queue and keys
# archived into digests.  Every call works before the update; after it the
# schema is the one a fresh install makes.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename;
use InvNode;

my $fixtures = dirname(__FILE__) . '/../fixtures';
# no worker in database shop: the steps must not race one
my $node = inventory_node('rolling', "inventory.serve_all_databases = off\n");
$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql('shop', "CREATE EXTENSION inventory VERSION '1.1'");
for my $t (qw(stock ledger reservation pending archived_key location))
{
	$node->safe_psql('shop', "COPY inventory.$t FROM '$fixtures/v1.1/$t.csv' WITH (FORMAT csv)");
}
$node->safe_psql('shop',
	"SELECT setval('inventory.ledger_id_seq', (SELECT max(id) FROM inventory.ledger))");
is($node->safe_psql('shop', 'SELECT count(*) FROM inventory.reconcile()'), '0',
	'the 1.1 tables reconcile');
# hold-short is long past its ttl: expired now, so that no replay below
# expires it on its way (a write, though not the call's)
is($node->safe_psql('shop', 'SELECT inventory.expire()'), '1', 'expire() under the new library');

# the calls that made the fixture, applied or archived: each a duplicate
my @applied = grep { /^SELECT (\* FROM )?inventory\.(restock|deduct|deduct_cart|deduct_any|deduct_cart_any|reserve|reserve_any|refund|adjust|apply_bills)\(/ }
  split /\n/, slurp_file("$fixtures/v1.1-calls.sql");
sub replays
{
	my ($when) = @_;
	my $ledger = $node->safe_psql('shop', 'SELECT count(*) FROM inventory.ledger');
	for my $call (@applied)
	{
		my $sql = $call =~ /apply_bills/ ? $call =~ s/SELECT \*/SELECT status/r
		  : $call =~ s/SELECT inventory\.(\w+)\((.*)\);/SELECT status FROM inventory.$1($2);/r;
		is($node->safe_psql('shop', $sql) =~ s/\n/,/gr, $call =~ /apply_bills/ ? 'duplicate,duplicate' : 'duplicate',
			"$when: $call is a duplicate");
	}
	is($node->safe_psql('shop', 'SELECT count(*) FROM inventory.ledger'), $ledger,
		"$when: the replays wrote nothing");
}

# every call, before the update, under the new library
sub calls
{
	my ($tag) = @_;
	my $first = $tag eq '1';
	my @expect = (
		"restock('tea', 5, 'r$tag')"                      => 'ok',
		"deduct('tea', 1, 'd$tag')"                       => 'ok',
		"deduct('hot', 1, 'h$tag')"                       => 'ok',
		"deduct_cart('{tea,mug}', '{1,1}', 'c$tag')"      => 'ok',
		"deduct_any('tea', 2, 'a$tag')"                   => 'ok',
		"deduct_cart_any('{tea,mug}', '{1,1}', 'ca$tag')" => 'ok',
		"reserve('tea', 2, 'hold$tag')"                   => 'ok',
		"confirm('hold$tag')"                             => 'ok',
		"reserve_any('tea', 2, 'hany$tag')"               => 'ok',
		"release('hany$tag')"                             => 'ok',
		"confirm('hold-long')"                            => $first ? 'ok' : 'duplicate',
		"release('hold-any')"                             => $first ? 'ok' : 'duplicate',
		"confirm('hold-short')"                           => 'expired',
		"refund('d$tag', 1, 'rf$tag')"                    => 'ok',
		"adjust('cup', 9, 'count$tag')"                   => 'ok',
		"deduct('tea', 1000000, 'big$tag')"               => 'insufficient');
	while (my ($call, $status) = splice(@expect, 0, 2))
	{
		is($node->safe_psql('shop', "SELECT status FROM inventory.$call"), $status,
			"$tag: $call");
	}
	my $bill = qq([{"key": "b$tag", "lines": [{"sku": "tea", "delta": -1}]}]);
	is($node->safe_psql('shop', "SELECT status FROM inventory.apply_bills('$bill')"), 'ok',
		"$tag: apply_bills");
	cmp_ok($node->safe_psql('shop', 'SELECT inventory.merge()'), '>', 0, "$tag: merge()");
	is($node->safe_psql('shop', 'SELECT inventory.expire()'), '0',
		"$tag: expire() (hold-short expired already)");
	is($node->safe_psql('shop', "SELECT state FROM inventory.reservation WHERE key = 'hold-short'"),
		'expired', "$tag: hold-short, long past its ttl, is expired");
	ok($node->safe_psql('shop', "SELECT inventory.available('tea') > 0"), "$tag: available()");
	is($node->safe_psql('shop', 'SELECT count(*) FROM inventory.reconcile()'), '0',
		"$tag: reconcile() is empty");
}

replays('at 1.1');
calls('1');
is($node->safe_psql('shop', 'SELECT count(*) FROM inventory.worker_status()'), '1',
	'worker_status() as 1.1 declares it');

# an application role granted 1.1's confirm(text) and release(text)
$node->safe_psql('shop', q{
	CREATE ROLE app LOGIN;
	GRANT USAGE ON SCHEMA inventory TO app;
	GRANT EXECUTE ON FUNCTION inventory.reserve(text, bigint, text, interval, text),
	                          inventory.confirm(text), inventory.release(text) TO app;
});
$node->safe_psql('shop', 'ALTER EXTENSION inventory UPDATE');
is($node->safe_psql('shop', q{
	SET ROLE app;
	SELECT (inventory.reserve('tea', 1, 'app-1')).status || ' '
	    || (inventory.confirm('app-1')).status || ' '
	    || (inventory.reserve('tea', 2, 'app-2')).status || ' '
	    || (inventory.confirm('app-2', 1, 'app-2-s1')).status || ' '
	    || (inventory.release('app-2')).status}),
	'ok ok ok ok ok', 'the role keeps its grants on confirm and release, now with steps');
is($node->safe_psql('shop', q{
	SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a
	 WHERE p.oid IN ('inventory.confirm(text, bigint, text, text)'::regprocedure,
	                 'inventory.release(text, bigint, text, text)'::regprocedure)
	   AND a.grantee = 0}), '0', 'and PUBLIC still has none');
# they stay the user's grants, not the extension's initial privileges: a
# dump keeps them (the update's own grants once took them in)
my $tmp = PostgreSQL::Test::Utils::tempdir;
$node->command_ok([ 'pg_dump', '--schema-only', '-d', $node->connstr('shop'), '-f', "$tmp/shop.sql" ],
	'pg_dump after the update');
my $dump = slurp_file("$tmp/shop.sql");
like($dump, qr/^GRANT USAGE ON SCHEMA inventory TO app;$/m, 'the dump grants the role the schema');
like($dump, qr/^GRANT ALL ON FUNCTION inventory\.confirm\(key text, qty bigint, step text, sku text\) TO app;$/m,
	'and confirm');
like($dump, qr/^GRANT ALL ON FUNCTION inventory\.release\(key text, qty bigint, step text, sku text\) TO app;$/m,
	'and release');
$node->safe_psql('shop', q{
	REVOKE ALL ON FUNCTION inventory.reserve(text, bigint, text, interval, text),
	                       inventory.confirm(text, bigint, text, text),
	                       inventory.release(text, bigint, text, text) FROM app;
	REVOKE USAGE ON SCHEMA inventory FROM app;
});
is($node->safe_psql('shop', "SELECT extversion FROM pg_extension WHERE extname = 'inventory'"),
	'1.2', 'updated to 1.2');
replays('at 1.2');
calls('2');
# counted since the server started: before the update too (d1, h1, d2, h2)
is($node->safe_psql('shop', q{SELECT calls FROM inventory.stats
	WHERE call = 'deduct' AND status = 'ok'}), '4', 'the figures of 1.2 count the calls');

# the schema is what a fresh install makes
my $describe = q{
SELECT string_agg(d, E'\n' ORDER BY d) FROM (
  SELECT 'function ' || p.oid::regprocedure || ' returns ' || pg_get_function_result(p.oid)
         || ' ' || p.prosecdef || ' ' || COALESCE(p.proacl::text, '') || ' '
         || COALESCE(obj_description(p.oid, 'pg_proc'), '') AS d
    FROM pg_proc p WHERE p.pronamespace = 'inventory'::regnamespace
  UNION ALL
  SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' ' || COALESCE(c.relacl::text, '') || ' '
         || COALESCE(obj_description(c.oid, 'pg_class'), '') || ' '
         || CASE c.relkind WHEN 'v' THEN pg_get_viewdef(c.oid) ELSE '' END
    FROM pg_class c WHERE c.relnamespace = 'inventory'::regnamespace
  UNION ALL
  SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || ' ' || a.attnotnull || ' ' || COALESCE(pg_get_expr(d.adbin, d.adrelid), '') || ' '
         || COALESCE(col_description(a.attrelid, a.attnum), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE c.relnamespace = 'inventory'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = 'inventory'::regnamespace
  UNION ALL
  SELECT 'index ' || indexrelid::regclass || ' ' || pg_get_indexdef(indexrelid)
    FROM pg_index WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'inventory'::regnamespace)
  UNION ALL
  SELECT 'schema ' || nspacl::text FROM pg_namespace WHERE nspname = 'inventory'
  UNION ALL
  SELECT 'initial privileges ' || pg_describe_object(classoid, objoid, objsubid) || ' '
         || initprivs::text
    FROM pg_init_privs
   WHERE (classoid = 'pg_namespace'::regclass AND objoid = 'inventory'::regnamespace)
      OR (classoid = 'pg_proc'::regclass
          AND objoid IN (SELECT oid FROM pg_proc WHERE pronamespace = 'inventory'::regnamespace))
      OR (classoid = 'pg_class'::regclass
          AND objoid IN (SELECT oid FROM pg_class WHERE relnamespace = 'inventory'::regnamespace))
) s};
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION inventory');
my $fresh = $node->safe_psql('fresh', $describe);
my $updated = $node->safe_psql('shop', $describe);
is($updated, $fresh, 'the updated schema is the one a fresh install makes');
$node->stop;

done_testing();
