# Faults inside calls: statement_timeout and lock_timeout firing while a call
# waits in a row's queue, pg_terminate_backend of a queued waiter, a client
# that vanishes mid-call, and a restart while reservations expire during the
# downtime.  After each: nothing half-done, invariants intact.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use Time::HiRes qw(time usleep);
use InvNode;

my $node = inventory_node('faults', qq{
inventory.expire_interval = '200ms'
});
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory;
	SELECT inventory.restock('row', 100, 'po-1');
});

# Hold the row's lock for a few seconds from another session.
sub hold_row
{
	my ($key, $seconds) = @_;
	my $h = IPC::Run::start([ 'psql', '-X', '-At', '-d', $node->connstr('postgres'),
		'-c', "BEGIN; SELECT inventory.deduct('row', 1, '$key'); SELECT pg_sleep($seconds); COMMIT;" ],
		'>', \my $out, '2>', \my $err);
	$node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep($seconds)%'
		   AND pid <> pg_backend_pid()}) or die 'holder did not start';
	return $h;
}

# Start a deduct that queues behind the holder; returns once it waits.
sub start_waiter
{
	my ($key, $err) = @_;
	my $h = IPC::Run::start([ 'psql', '-X', '-At', '-d', $node->connstr('postgres'),
		'-c', "SELECT inventory.deduct('row', 1, '$key')" ], '>', \my $out, '2>', $err);
	$node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted})
	  or die 'no waiter';
	return $h;
}

sub ledger_count { $node->safe_psql('postgres', 'SELECT count(*) FROM inventory.ledger') }
sub consistent
{
	my ($label) = @_;
	is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'), '0',
		"$label: reconcile() is empty");
}

# statement_timeout fires while the call waits in the row's queue
my $holder = hold_row('hold-1', 3);
my $before = ledger_count();
my ($ret, $out, $err) = $node->psql('postgres',
	"SET statement_timeout = '300ms'; SELECT inventory.deduct('row', 1, 'st-1')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/57014/, 'statement_timeout cancels a waiting deduct (57014)');
$holder->finish;
is(ledger_count(), $before + 1, 'only the holder wrote');
is($node->safe_psql('postgres', "SELECT status FROM inventory.deduct('row', 1, 'st-1')"),
	'ok', 'the cancelled key is still unused: a retry applies it');
consistent('statement_timeout');

# lock_timeout fires in the queue
$holder = hold_row('hold-2', 3);
($ret, $out, $err) = $node->psql('postgres',
	"SET lock_timeout = '300ms'; SELECT inventory.deduct('row', 1, 'lt-1')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/55P03/, 'lock_timeout gives up waiting (55P03)');
$holder->finish;
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory.ledger WHERE key = 'lt-1' AND call IS NOT NULL}),
	'0', 'the timed-out call recorded nothing');
consistent('lock_timeout');

# pg_terminate_backend of a waiter in the queue
$holder = hold_row('hold-3', 3);
my $werr = '';
my $waiter = start_waiter('term-1', \$werr);
$node->safe_psql('postgres', q{
	SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted});
$waiter->finish;
$holder->finish;
like($werr, qr/terminat/, 'the waiter was terminated');
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory.ledger WHERE key = 'term-1' AND call IS NOT NULL}),
	'0', 'it recorded nothing');
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory.ledger WHERE key = 'hold-3' AND call IS NOT NULL}),
	'1', 'the holder committed normally');
consistent('terminate');

# the client vanishes while its call waits: the call completes or not, and a
# retry with the key tells which, never applying it twice
$holder = hold_row('hold-4', 2);
my $gerr = '';
my $gone = start_waiter('gone-1', \$gerr);
$gone->kill_kill;
$holder->finish;
$node->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE '%gone-1%' AND pid <> pg_backend_pid()});
my $status = $node->safe_psql('postgres', "SELECT status FROM inventory.deduct('row', 1, 'gone-1')");
ok($status eq 'ok' || $status eq 'duplicate', "the retry after a vanished client answers $status");
is($node->safe_psql('postgres', q{SELECT count(*) FROM inventory.ledger WHERE key = 'gone-1'}),
	'1', 'applied exactly once');
consistent('vanished client');

# a restart while reservations expire during the downtime
$node->safe_psql('postgres', q{
	SELECT inventory.reserve('row', 5, 'r-1', ttl => '2 seconds');
	SELECT inventory.reserve('row', 5, 'r-2', ttl => '1 hour');
});
my $avail = $node->safe_psql('postgres', "SELECT inventory.available('row', 'default')");
my $due = $node->safe_psql('postgres', q{
	SELECT extract(epoch FROM expires_at) FROM inventory.reservation WHERE key = 'r-1'});
$node->stop('fast');
# down until the hold is overdue (the clock is the state waited for)
usleep(100_000) while time() <= $due;
$node->start;
is($node->safe_psql('postgres', "SELECT inventory.available('row', 'default')"),
	$avail + 5, 'right after the restart the expired hold already counts as available');
ok($node->poll_query_until('postgres', q{
	SELECT state = 'expired' FROM inventory.reservation WHERE key = 'r-1'}),
	'the worker expires it after the restart');
is($node->safe_psql('postgres', q{SELECT state FROM inventory.reservation WHERE key = 'r-2'}),
	'held', 'the live hold is untouched');
consistent('restart');

$node->stop;
done_testing();
