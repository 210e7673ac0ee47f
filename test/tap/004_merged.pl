# Merged mode: hot deductions made outside a transaction block are applied
# and committed in batches by the database's worker (its committer); inside a block, or
# with inventory.merged_mode off, they keep the transactional path.  If the
# committer dies, callers fall back to the transactional path.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use InvNode;

# The worker's expiry passes, automatic rule, launcher and first merge pass
# pause merged mode (a call then takes the transactional path): keep them
# out of the way of the counts below.
my $node = inventory_node('merged', qq{
restart_after_crash = on
max_connections = 60
inventory.serve_all_databases = off
inventory.merge_interval = '1h'
inventory.expire_interval = '1h'
inventory.auto_hot = off
});
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory;
	SELECT inventory.restock('hot', 100000, 'po-1');
	SELECT inventory.set_hot('hot');
});
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'inventory worker' AND datname = current_database()")
  or die 'no committer';

sub merged { $node->safe_psql('postgres', 'SELECT merged_requests FROM inventory.worker_status()') }

# the first call after a start loads the row's counter (transactional path);
# then a lone caller is merged, and answers at once
is($node->safe_psql('postgres', "SELECT status FROM inventory.deduct('hot', 1, 'load-1')"),
	'ok', 'the first call loads the counter');
my $before = merged();
is($node->safe_psql('postgres', "SELECT status FROM inventory.deduct('hot', 2, 'lone-1')"),
	'ok', 'a lone caller gets ok');
is(merged() - $before, 1, 'it went through the committer');
is($node->safe_psql('postgres', "SELECT status FROM inventory.deduct('hot', 2, 'lone-1')"),
	'duplicate', 'its retry is a duplicate');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory.ledger WHERE key = 'lone-1'}), '1', 'one ledger row');

# inside a transaction block: transactional, so a rollback gives units back
$before = merged();
my $avail = $node->safe_psql('postgres', "SELECT inventory.available('hot', 'default')");
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT inventory.deduct('hot', 5, 'block-1');
	ROLLBACK;
});
is(merged() - $before, 0, 'a call in a transaction block is not merged');
is($node->safe_psql('postgres', "SELECT inventory.available('hot', 'default')"),
	$avail, 'its rollback gave the units back');

# merged mode off
$node->safe_psql('postgres', q{
	SET inventory.merged_mode = off;
	SELECT inventory.deduct('hot', 1, 'off-1');
});
is(merged() - $before, 0, 'inventory.merged_mode = off is not merged');

# Only a caller whose own transaction could commit the same work is merged:
# not a procedure that may roll back, not a read-only transaction
sub ledger_rows
{
	my ($key) = @_;
	return $node->safe_psql('postgres', "SELECT count(*) FROM inventory.ledger WHERE key = '$key'");
}
$node->safe_psql('postgres', q{
	CREATE PROCEDURE take_then_rollback() LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM inventory.deduct('hot', 1, 'proc-1');
		ROLLBACK;
	END $$;
	CALL take_then_rollback();
});
is(merged() - $before, 0, 'a call inside a procedure is not merged');
is(ledger_rows('proc-1'), '0', "the procedure's ROLLBACK undid it");
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SET default_transaction_read_only = on;
	SELECT inventory.deduct('hot', 1, 'ro-1');
});
like($stderr, qr/read-only transaction/, 'a read-only transaction is refused, on a hot row too');
is(ledger_rows('ro-1'), '0', 'and nothing was applied');

# Extended-protocol pipelines (pgbench): a merged deduct ends the pipeline's
# transaction at once, as VACUUM would, so what a client learns is what was
# committed; a deduct after another statement of the transaction is not
# merged, and the pipeline's error rolls it back
sub pipeline
{
	my ($name, @statements) = @_;
	my $file = "${PostgreSQL::Test::Utils::tmp_check}/$name.sql";
	open my $fh, '>', $file or die $!;
	print $fh join("\n", '\startpipeline', @statements, '\endpipeline'), "\n";
	close $fh;
	IPC::Run::run([ 'pgbench', '-n', '-M', 'extended', '-t', '1', '-f', $file,
		$node->connstr('postgres') ], '>', \my $out, '2>', \my $err);
	return $err;
}
pipeline('pipe1', q{SELECT inventory.deduct('hot', 1, 'pipe-1');}, 'SELECT 1/0;');
is(ledger_rows('pipe-1'), '1', 'a merged deduct first in a pipeline is committed at once');
is(merged() - $before, 1, 'through the committer');
pipeline('pipe2', 'SELECT 1;', q{SELECT inventory.deduct('hot', 1, 'pipe-2');}, 'SELECT 1/0;');
is(ledger_rows('pipe-2'), '0', "a deduct later in a pipeline's transaction is undone with it");
is(merged() - $before, 1, 'it was not merged');

# many clients: the batches grow, every status is right
my @clients;
for my $c (1 .. 16)
{
	my $file = "${PostgreSQL::Test::Utils::tmp_check}/m$c.sql";
	open my $fh, '>', $file or die $!;
	print $fh "SELECT status FROM inventory.deduct('hot', 1, 'm$c-$_');\n" for 1 .. 300;
	close $fh;
	my $out = '';
	push @clients, [ IPC::Run::start([ 'psql', '-X', '-At', '-d', $node->connstr('postgres'),
		'-f', $file ], '>', \$out, '2>', \my $err), \$out ];
}
$_->[0]->finish for @clients;
my $oks = 0;
$oks += scalar(grep { $_ eq 'ok' } split /\n/, ${ $_->[1] }) for @clients;
is($oks, 16 * 300, 'every concurrent deduct answered ok');
cmp_ok($node->safe_psql('postgres', 'SELECT largest_batch FROM inventory.worker_status()'),
	'>', 1, 'concurrent callers shared batches');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory.ledger WHERE key LIKE 'm%' AND op = 'deduct'}),
	16 * 300, 'one ledger row per deduct');

# A merged request whose key an open transaction is recording goes to the
# transactional path: its caller waits for that transaction itself, and the
# worker, whose batch mates cannot be cancelled, waits for nobody.  Retries
# of one key from 8 clients at once (on other connections, maybe in one
# round of a batch): one ok, 7 duplicates, one ledger row, and the counter
# stays in step with the tables.
sub psql_bg
{
	my ($sql) = @_;
	my $out = '';
	my $h = IPC::Run::start([ 'psql', '-X', '-At', '-d', $node->connstr('postgres'),
		'-c', $sql ], '>', \$out, '2>', \my $err);
	return [ $h, \$out ];
}
my $holder = psql_bg("BEGIN; SELECT status FROM inventory.deduct('hot', 1, 'blocker'); SELECT pg_sleep(3); ROLLBACK;");
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3)%' AND wait_event = 'PgSleep'")
  or die 'no holder';
my $blocked = psql_bg("SELECT status FROM inventory.deduct('hot', 1, 'blocker')");
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity
	 WHERE backend_type = 'client backend' AND query LIKE '%''blocker'')'
	   AND wait_event_type = 'Lock'}),
	'the caller of a key being recorded waits for it itself');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'inventory worker' AND wait_event_type = 'Lock'}),
	'0', 'the worker waits for nobody');
my @pile = map { psql_bg("SELECT status FROM inventory.deduct('hot', 1, 'pile')") } 1 .. 8;
$_->[0]->finish for $holder, $blocked, @pile;
my %answers;
$answers{${ $_->[1] } =~ s/\s+$//r}++ for @pile;
is($answers{ok}, 1, 'one of 8 requests with one key is ok');
is($answers{duplicate}, 7, 'the other 7 are duplicates');
is(${ $blocked->[1] } =~ s/\s+$//r, 'ok', 'the request that waited for the open transaction is ok');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM inventory.ledger WHERE key = 'pile'}), '1', 'one ledger row for the key');
$node->safe_psql('postgres', 'SELECT inventory.merge()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'),
	'0', 'the counter matches the tables');

# the committer dies: callers fall back, nothing is lost or doubled
my $committer = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'inventory worker' AND datname = current_database()");
kill 'KILL', $committer;
$node->poll_query_until('postgres', 'SELECT true');
is($node->safe_psql('postgres', "SELECT status FROM inventory.deduct('hot', 1, 'after-1')"),
	'ok', 'a deduct works right after the committer died');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'inventory worker' AND datname = current_database()"),
	'the committer is back');
$before = merged();
is($node->safe_psql('postgres', "SELECT status FROM inventory.deduct('hot', 1, 'after-2')"),
	'ok', 'and merged mode resumes');
is(merged() - $before, 1, 'through the new committer');

$node->safe_psql('postgres', 'SELECT inventory.merge()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'),
	'0', 'reconcile() is empty');
is($node->safe_psql('postgres', q{
	SELECT on_hand FROM inventory.stock WHERE sku = 'hot'}),
	100000 - 1 - 2 - 1 - 1 - 16 * 300 - 1 - 1 - 2, 'on_hand accounts for every deduct once');

$node->stop;
done_testing();
