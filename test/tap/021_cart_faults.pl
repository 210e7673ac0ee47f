# Carts across shards under faults, finished by the resolver.  Two shard
# servers hold four partitions, behind a proxy.  Four clients send carts
# whose lines live on both servers (a new connection per call, as a web
# server would), sold at once (deduct_cart) or held then confirmed
# (reserve_cart, then confirm by key; half of those after a step that
# sells one unit of the cart's first line), some keys sent by several
# clients at once, while one
# server is killed (kill -9 of every process but the postmaster, which
# restarts it, as after a crash), and the other paused (SIGSTOP) until a
# cart is past the clients' statement_timeout, then restarted.  Each fault waits for the clients' answers (never for a time).
# Afterwards half the unanswered carts are retried until they answer and
# the other half never are; inventory_proxy.resolve() runs until no cart is
# pending; then every cart is whole (status ok, each line sold once) or
# undone (no unit of it sold: refused, released or expired; but for the
# unit of a step, which stays sold once a step answered so), every answer
# agrees with the cart's status,
# nothing is held once the holds' ttl has passed, and reconcile() is empty
# on every partition.
use strict;
use warnings;
use IPC::Run;
use POSIX ();
use PostgreSQL::Test::Utils;
use Test::More;
use InvNode;

my $clients = 4;
my $carts_per_client = 120;    # the bound: a client stops here at the latest

my %shard = map { $_ => inventory_node("fault_$_", "restart_after_crash = on\n") } 'a', 'b';
my @parts = ([ 'a', 'part0' ], [ 'b', 'part1' ], [ 'a', 'part2' ], [ 'b', 'part3' ]);
for my $p (@parts)
{
	my ($s, $db) = @$p;
	$shard{$s}->safe_psql('postgres', "CREATE DATABASE $db");
	$shard{$s}->safe_psql($db, 'CREATE EXTENSION inventory');
}
sub on_part { my ($p, $sql) = @_; return $shard{ $parts[$p][0] }->safe_psql($parts[$p][1], $sql) }

my $proxy = PostgreSQL::Test::Cluster->new('fault_proxy');
$proxy->init;
$proxy->start;
my $options = join(', ', map { "p$_ '" . $shard{ $parts[$_][0] }->connstr($parts[$_][1]) =~ s/'//gr . "'" } 0 .. 3);
$proxy->safe_psql('postgres', qq{
	CREATE EXTENSION inventory_proxy CASCADE;
	CREATE SERVER inventory_shards FOREIGN DATA WRAPPER plproxy OPTIONS ($options);
	CREATE USER MAPPING FOR PUBLIC SERVER inventory_shards;
	ALTER DATABASE postgres SET inventory_proxy.hold_ttl = '2s';
	ALTER DATABASE postgres SET statement_timeout = '3s';
});
sub px { return $proxy->safe_psql('postgres', $_[0]) }

# 8 skus on each server; two of each scarce, so some carts are refused
my %part_of = map { split /\|/ } split /\n/, px(q{
	SELECT s || '|' || inventory_proxy.partition_of(s, 4, false)
	  FROM (SELECT 'sku-' || i AS s FROM generate_series(1, 60) i) x});
my @on_a = (grep { $part_of{$_} % 2 == 0 } sort keys %part_of)[ 0 .. 7 ];
my @on_b = (grep { $part_of{$_} % 2 == 1 } sort keys %part_of)[ 0 .. 7 ];
my %initial;
for my $i (0 .. 7)
{
	$initial{ $on_a[$i] } = $initial{ $on_b[$i] } = $i < 2 ? 40 : 100000;
}
px("SELECT inventory.restock('$_', $initial{$_}, 'po-$_')") for sort keys %initial;

# The carts: a line or two on each server, 1 to 3 units each; a third of
# them held first (odd shared keys, and every fourth of a client's own),
# and half of those settled in parts (a step, then the rest).
# A quarter of each client's carts come from a pool of shared keys that
# every client walks through in the same order, so the same cart is sent by
# several clients at once.
srand(20261206);
sub a_cart
{
	my ($held) = @_;
	my %lines;
	$lines{ $on_a[ int(rand(8)) ] } = 1 + int(rand(3)) for 1 .. 1 + int(rand(2));
	$lines{ $on_b[ int(rand(8)) ] } = 1 + int(rand(3)) for 1 .. 1 + int(rand(2));
	my @skus = sort keys %lines;
	return { skus => \@skus, qtys => [ map { $lines{$_} } @skus ], held => $held,
		parted => $held && rand() < 0.5 };
}
my %cart;      # key => lines
my @plan;      # per client, its keys in order
my @shared = map { "shared-$_" } 1 .. 40;
$cart{"shared-$_"} = a_cart($_ % 2) for 1 .. 40;
for my $c (0 .. $clients - 1)
{
	for my $n (1 .. $carts_per_client)
	{
		my $key = $n % 4 == 0 ? $shared[ ($n / 4) % @shared ] : "c$c-$n";
		$cart{$key} //= a_cart($n % 4 == 1);
		push @{ $plan[$c] }, $key;
	}
}

# One call, on a new connection: its status, or "error" (unanswered).
sub call_status
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run([ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', $proxy->connstr('postgres'),
			'-c', $sql ], '>', \$out, '2>', \$err, IPC::Run::timeout(120));
	};
	chomp $out;
	return $ok && $out =~ /^\w+$/ ? $out : 'error';
}
# One cart: sold, or held then confirmed (the confirm's answer), and the
# answer of its step ('-' for none).
sub send_cart
{
	my ($key) = @_;
	my $l = $cart{$key};
	my $lines = sprintf("'{%s}', '{%s}', '%s'", join(',', @{ $l->{skus} }), join(',', @{ $l->{qtys} }), $key);
	return (call_status("SELECT status FROM inventory.deduct_cart($lines)"), '-') unless $l->{held};
	my $held = call_status("SELECT status FROM inventory.reserve_cart($lines, '3 s')");
	return ($held, '-') unless $held =~ /^(ok|duplicate)$/;
	my $step = $l->{parted}
	  ? call_status("SELECT status FROM inventory.confirm('$key', 1, '$key-s1', '$l->{skus}[0]')") : '-';
	return (call_status("SELECT status FROM inventory.confirm('$key')"), $step);
}

# the clients: each writes "key answer" lines to its file
my $dir = $PostgreSQL::Test::Utils::tmp_check;
my $stop = "$dir/faults-stop";
my @pids;
for my $c (0 .. $clients - 1)
{
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open my $fh, '>', "$dir/faults-$c.out" or POSIX::_exit(1);
		$fh->autoflush(1);
		for my $key (@{ $plan[$c] })
		{
			last if -e $stop;
			print $fh join(' ', $key, send_cart($key)) . "\n";
		}
		close $fh;
		POSIX::_exit(0);    # not the test's END blocks
	}
	push @pids, $pid;
}

# answers so far, per client
sub answers
{
	my @n;
	for my $c (0 .. $clients - 1)
	{
		open my $fh, '<', "$dir/faults-$c.out" or do { push @n, 0; next };
		my @lines = grep { /\n$/ } <$fh>;
		push @n, scalar @lines;
	}
	return @n;
}
# the answers each client gave after the counts @$from (answers())
sub last_answers
{
	my ($from) = @_;
	my @new;
	for my $c (0 .. $clients - 1)
	{
		open my $fh, '<', "$dir/faults-$c.out" or next;
		my @mine = map { (split)[1] } grep { /\n$/ } <$fh>;
		push @new, @mine[ $from->[$c] .. $#mine ];
	}
	return @new;
}
# wait until every client still running has answered $more more carts
sub wait_answers
{
	my ($more) = @_;
	my @from = answers();
	while (1)
	{
		my @now = answers();
		my $behind = grep { $now[$_] < $from[$_] + $more && $now[$_] < $carts_per_client } 0 .. $#now;
		last unless $behind;
		select(undef, undef, undef, 0.05);
	}
}
# every process of a server (its postmaster and the postmaster's children)
sub processes
{
	my ($node) = @_;
	open my $fh, '<', $node->data_dir . '/postmaster.pid' or die $!;
	my $pm = <$fh>;
	chomp $pm;
	my @kids = split /\s+/, `ps -o pid= --ppid $pm`;
	return ($pm, grep { /^\d+$/ } @kids);
}

wait_answers(10);
note 'kill -9 of every process of shard server b but its postmaster, which restarts it';
my ($pm, @killed) = processes($shard{b});
kill 'KILL', @killed;
wait_answers(3);
$shard{b}->poll_query_until('postgres', 'SELECT true')
  or die 'shard server b did not come back';

wait_answers(10);
note 'shard server a paused (SIGSTOP) until a cart is past its statement_timeout';
my @paused = processes($shard{a});
my @before = answers();
kill 'STOP', @paused;
# a client answered by an error since, or a cart still running past its
# statement_timeout (its answer will be an error)
until ((grep { $_ eq 'error' } last_answers(\@before)) || px(q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE query ~ 'inventory\.(deduct_cart|reserve_cart|confirm)' AND state = 'active'
	   AND pid <> pg_backend_pid() AND clock_timestamp() - query_start > interval '4s'}))
{
	select(undef, undef, undef, 0.1);
}
kill 'CONT', @paused;

wait_answers(10);
note 'shard server a restarted';
$shard{a}->restart;
wait_answers(10);
open my $fh, '>', $stop or die $!;
close $fh;
waitpid($_, 0) for @pids;

# what the clients saw
my %answers;    # key => [answers]
my %stepped;    # key => whether a step of it answered ok or duplicate
for my $c (0 .. $clients - 1)
{
	open my $in, '<', "$dir/faults-$c.out" or die $!;
	for (<$in>)
	{
		my ($key, $answer, $step) = split;
		push @{ $answers{$key} }, $answer;
		$stepped{$key} ||= $step =~ /^(ok|duplicate)$/;
	}
}
my @sent = sort keys %answers;
my @unanswered = grep { !grep { $_ ne 'error' } @{ $answers{$_} } } @sent;
note scalar(@sent) . ' carts sent, ' . scalar(@unanswered) . ' never answered';
ok(@unanswered > 0, 'the faults left carts unanswered');

# half the unanswered carts are retried until they answer; the rest never
my $i = 0;
for my $key (grep { $i++ % 2 == 0 } @unanswered)
{
	my ($answer, $step) = ('error', '-');
	for (1 .. 50)
	{
		($answer, $step) = send_cart($key);
		$stepped{$key} ||= $step =~ /^(ok|duplicate)$/;
		last if $answer ne 'error';
	}
	push @{ $answers{$key} }, $answer;
	isnt($answer, 'error', "the retry of $key answers ($answer)");
}

# the resolver finishes or undoes every other cart (and lets go of every
# held cart past its ttl)
sub pending
{
	my $n = 0;
	$n += on_part($_, q{SELECT count(*) FROM inventory.cart_manifest
		WHERE state IN ('pending', 'holding', 'held', 'confirming')})
	  for 0 .. 3;
	return $n;
}
my $rounds = 0;
while (pending() > 0)
{
	die 'carts still pending after 2,000 rounds of the resolver' if ++$rounds > 2000;
	px('SELECT inventory_proxy.resolve()');
	select(undef, undef, undef, 0.1);
}
is(pending(), 0, 'no cart is left pending');

# nothing held once the holds' ttl has passed (the shards' workers expire them)
ok($proxy->poll_query_until('postgres',
	q{SELECT inventory.expire() >= 0 AND NOT EXISTS (SELECT FROM inventory.stock_levels WHERE reserved <> 0)}),
	'nothing is held after the ttl');

# units each cart sold, per sku: its derived keys' confirms, less their refunds
my %sold;    # key => sku => units
for my $p (0 .. 3)
{
	for (split /\n/, on_part($p, q{
		SELECT split_part(key, '#', 1), sku, -sum(on_hand_delta)
		  FROM inventory.ledger WHERE key LIKE '%#%' AND sku IS NOT NULL GROUP BY 1, 2}))
	{
		my ($key, $sku, $units) = split /\|/;
		$sold{$key}{$sku} = $units;
	}
}
my %status = map { split /\|/ } split /\n/, px(sprintf(
	q{SELECT k || '|' || COALESCE(inventory_proxy.status(k), 'unknown') FROM unnest('{%s}'::text[]) k},
	join(',', @sent)));

my (@broken, %count);
my %sold_of;    # sku => units sold by carts that are ok
for my $key (@sent)
{
	my $st = $status{$key};
	my $l = $cart{$key};
	my %want = $st eq 'ok' ? map { ($l->{skus}[$_] => $l->{qtys}[$_]) } 0 .. $#{ $l->{skus} } : ();
	my %got = %{ $sold{$key} // {} };
	# a cart settled in parts that did not finish: its step's unit, if the
	# step went through (it must have, if it answered so)
	my $first = $l->{skus}[0];
	$want{$first} = 1 if $l->{parted} && $st ne 'ok' && ($stepped{$key} || ($got{$first} // 0) == 1);
	my @wrong = grep { ($got{$_} // 0) != ($want{$_} // 0) } keys %{ { %want, %got } };
	push @broken, "$key ($st): sold " . join(',', map { "$_=" . ($got{$_} // 0) } sort keys %got)
	  if @wrong;
	$sold_of{$_} += $want{$_} for keys %want;
	$count{$st}++;
	my @said = grep { $_ ne 'error' } @{ $answers{$key} };
	push @broken, "$key answered ok but is $st" if grep({ /^(ok|duplicate)$/ } @said) && $st ne 'ok';
	# (a refusal, insufficient or not_found, records nothing: the key stays
	# unused, and a later call with it, from another client, may sell it)
	push @broken, "$key answered @said but is ok"
	  if grep({ !/^(ok|duplicate|insufficient|not_found)$/ } @said) && $st eq 'ok';
	push @broken, "$key is $st" unless $st =~ /^(ok|undone|unknown)$/;
}
note join(', ', map { "$_: $count{$_}" } sort keys %count);
is(join("\n", @broken), '', 'every cart is whole or undone, as its answers said');

px('SELECT inventory.merge()');
my %on_hand = map { split /\|/ } split /\n/, px(q{SELECT sku || '|' || on_hand FROM inventory.stock_levels});
is(join(' ', map { "$_=" . $on_hand{$_} } sort keys %initial),
	join(' ', map { "$_=" . ($initial{$_} - ($sold_of{$_} // 0)) } sort keys %initial),
	'each sku\'s stock is what the whole carts took, no more');
is(px('SELECT count(*) FROM inventory.reconcile()'), '0', 'reconcile() is empty on every partition');

$proxy->stop;
$shard{$_}->stop for keys %shard;
done_testing();
