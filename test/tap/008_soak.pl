# Soak: a mixed workload (deduct, cart, reserve then confirm, release or
# expiry, deduct then refund, restock, bills) on 1,000 SKUs of which 5 are
# hot, from 64 pgbench clients.  INVENTORY_SOAK_SECONDS sets the length
# (default 30; `scripts/test --long` soaks 10 minutes).  At the end:
# no client failed, reconcile() is empty, the extension's shared memory and
# the workers' memory did not grow, the tables' bloat is bounded, and with
# inventory.history_retention = 10s the history stays the size of its last
# seconds (the ledger's rows are counted at half time and at the end).  The
# figures are printed for the README's reliability section.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Time::HiRes qw(usleep);
use Test::More;
use InvNode;

my $seconds = $ENV{INVENTORY_SOAK_SECONDS} || 30;
my $clients = 64;

my $node = inventory_node('soak', qq{
max_connections = 100
shared_buffers = 128MB
autovacuum_naptime = 5s
inventory.history_retention = '10s'
});
$node->safe_psql('postgres', q{
CREATE EXTENSION inventory;
CREATE SCHEMA soak;
CREATE SEQUENCE soak.seq;
SELECT inventory.restock('sku-' || i, CASE WHEN i <= 5 THEN 100000 ELSE 1000 END, 'seed-' || i)
  FROM generate_series(1, 1000) i;
SELECT inventory.set_hot('sku-' || i) FROM generate_series(1, 5) i;
});

# The transaction scripts, with weights.  Every key comes from a sequence,
# so no two calls share one; sku-1..5 are the hot rows.
my $pick = "\\set h random(1, 5)\n\\set c random(6, 1000)\n\\set d random(1, 1000)\n";
my %scripts = (
	deduct => [ 40, "SELECT status FROM inventory.deduct('sku-' || CASE WHEN :c % 2 = 0 THEN :h ELSE :c END, 1, 'd' || nextval('soak.seq'));\n" ],
	cart => [ 5, "SELECT status FROM inventory.deduct_cart(ARRAY['sku-' || :h, 'sku-' || :c], ARRAY[1, 2]::bigint[], 'cart' || nextval('soak.seq'));\n" ],
	confirm => [ 10, "SELECT nextval('soak.seq') AS k \\gset\n"
		  . "SELECT status FROM inventory.reserve('sku-' || :d, 1, 'h' || :k, interval '10 minutes');\n"
		  . "SELECT status FROM inventory.confirm('h' || :k);\n" ],
	release => [ 10, "SELECT nextval('soak.seq') AS k \\gset\n"
		  . "SELECT status FROM inventory.reserve('sku-' || :d, 1, 'h' || :k, interval '10 minutes');\n"
		  . "SELECT status FROM inventory.release('h' || :k);\n" ],
	expire => [ 5, "SELECT status FROM inventory.reserve('sku-' || :d, 1, 'x' || nextval('soak.seq'), interval '1 second');\n" ],
	refund => [ 10, "SELECT nextval('soak.seq') AS k \\gset\n"
		  . "SELECT status FROM inventory.deduct('sku-' || :d, 2, 'r' || :k);\n"
		  . "SELECT status FROM inventory.refund('r' || :k, 1, 'refund' || :k);\n" ],
	restock => [ 10, "SELECT status FROM inventory.restock('sku-' || :d, 20, 'p' || nextval('soak.seq'));\n" ],
	bills => [ 10, "SELECT count(*) FROM inventory.apply_bills(jsonb_build_array("
		  . "jsonb_build_object('key', 'b' || nextval('soak.seq'), 'lines', jsonb_build_array("
		  . "jsonb_build_object('sku', 'sku-' || :h, 'delta', -1), jsonb_build_object('sku', 'sku-' || :c, 'delta', -2))),"
		  . "jsonb_build_object('key', 'b' || nextval('soak.seq'), 'lines', jsonb_build_array("
		  . "jsonb_build_object('sku', 'sku-' || :d, 'delta', 3)))));\n" ],
);
my @files;
for my $name (sort keys %scripts)
{
	my $file = "${PostgreSQL::Test::Utils::tmp_check}/soak-$name.sql";
	open my $fh, '>', $file or die $!;
	print $fh $pick, $scripts{$name}[1];
	close $fh;
	push @files, '-f', "$file\@$scripts{$name}[0]";
}

# Run pgbench for $secs; returns (exit code, output).
sub load
{
	my ($secs) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'pgbench', '-n', '-c', $clients, '-j', 2, '-T', $secs,
		@files, '-h', $node->host, '-p', $node->port, 'postgres' ],
		'>', \$out, '2>', \$err);
	return ($? >> 8, $out . $err);
}

# The extension's shared memory, in bytes.
sub shmem
{
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(allocated_size), 0) FROM pg_shmem_allocations WHERE name ILIKE 'inventory%'");
}

# Memory each worker's contexts use (allocated minus free), by backend
# type: the least of three reports, since a worker may be in the middle of a
# pass (an expiry or archiving batch) when it reports; a leak raises the
# floor, a pass's working memory does not.
sub worker_memory
{
	my %bytes;
	for my $sample (1 .. 3)
	{
		my $rows = $node->safe_psql('postgres', q{
			SELECT backend_type, pid FROM pg_stat_activity
			 WHERE backend_type = 'inventory worker'});
		for (split /\n/, $rows)
		{
			my ($type, $pid) = split /\|/;
			my $offset = -s $node->logfile;
			$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
			my $total;
			for (1 .. 100)
			{
				my $log = slurp_file($node->logfile, $offset);
				last if ($total) = $log =~ /\[$pid\].*Grand total: .* (\d+) used/;
				usleep(100_000);
			}
			$bytes{$type} = $total
			  if defined $total && (!defined $bytes{$type} || $total < $bytes{$type});
		}
	}
	return \%bytes;
}

# A table's size with its indexes, and its dead rows.
sub table_size
{
	my ($table) = @_;
	return split /\|/, $node->safe_psql('postgres',
		"SELECT pg_total_relation_size('inventory.$table'), n_live_tup, n_dead_tup
		   FROM pg_stat_user_tables WHERE relid = 'inventory.$table'::regclass");
}

# warm up past the retention, so that every path (expiry, archiving, keys
# found archived) has run and prepared its statements, then take the
# starting figures
my ($rc, $out) = load(12);
is($rc, 0, 'warm-up ran') or diag($out);
my $shmem0 = shmem();
my $mem0 = worker_memory();
my ($stock0) = table_size('stock');

# two halves: the history's size in between, and at the end
my $history = q{SELECT count(*), pg_total_relation_size('inventory.ledger')
	+ pg_total_relation_size('inventory.reservation')
	+ pg_total_relation_size('inventory.archived_key') FROM inventory.ledger};
my ($rc1, $out1) = load(int($seconds / 2));
my ($half_rows, $half_bytes) = split /\|/, $node->safe_psql('postgres', $history);
my ($rc2, $out2) = load($seconds - int($seconds / 2));
my ($end_rows, $end_bytes) = split /\|/, $node->safe_psql('postgres', $history);
($rc, $out) = ($rc1 || $rc2, $out1 . $out2);
is($rc, 0, "$clients clients ran $seconds s of mixed load without a failure") or diag($out);
my $tx = 0;
$tx += $_ for $out =~ /number of transactions actually processed: (\d+)/g;
my $tps = sprintf('%.0f', $tx / $seconds);
unlike($out, qr/client \d+ aborted|ERROR:/, 'pgbench reports no aborted client or error');
ok($end_rows <= 2 * $half_rows + 10000,
	"the ledger keeps the size of its retention: $half_rows rows at half time, $end_rows at the end");

# let expiry and the merge catch up, then check
$node->poll_query_until('postgres',
	"SELECT inventory.expire() >= 0 AND inventory.merge() >= 0
	    AND NOT EXISTS (SELECT FROM inventory.pending)")
  or die 'the queue did not drain';
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.reconcile()'), '0',
	'reconcile() is empty after the soak');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM inventory.ledger l
	 WHERE op <> 'checkpoint' AND at < now() - interval '20 seconds'
	   AND NOT EXISTS (SELECT FROM inventory.reservation r
	                    WHERE r.key = l.key AND r.state = 'held')}),
	'the worker archives history older than inventory.history_retention');
my $oversold = $node->safe_psql('postgres',
	'SELECT count(*) FROM inventory.stock WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand');
is($oversold, '0', 'no row is oversold');

my $shmem1 = shmem();
ok($shmem0 > 0 && $shmem1 == $shmem0, "the extension's shared memory did not grow ($shmem1 bytes)");
my $mem1 = worker_memory();
for my $type (sort keys %$mem0)
{
	ok(defined $mem1->{$type} && $mem1->{$type} <= $mem0->{$type} + 256 * 1024,
		"$type memory did not grow: $mem0->{$type} -> " . ($mem1->{$type} // '?') . ' bytes used');
}
is(scalar keys %$mem0, 1, 'the worker reported its memory');

# bloat: the stock table is rewritten all the time; it must stay small
$node->safe_psql('postgres', 'VACUUM (ANALYZE) inventory.stock, inventory.pending');
my ($stock1, $live) = table_size('stock');
ok($stock1 <= 16 * 1024 * 1024, "the stock table stays bounded: $stock0 -> $stock1 bytes for $live rows");

my $ledger = $node->safe_psql('postgres', 'SELECT count(*) FROM inventory.ledger');
my @sizes = map { my ($b, $l, $d) = table_size($_); "$_ " . int($b / 1024) . " kB ($l live, $d dead)" }
  qw(stock ledger reservation pending archived_key);
diag("soak: $seconds s, $clients clients, $tx transactions ($tps/s), $ledger ledger rows");
diag("soak: shared memory $shmem1 bytes; worker memory "
	  . join(', ', map { "$_ $mem0->{$_} -> $mem1->{$_}" } sort keys %$mem0));
diag("soak: sizes after: " . join('; ', @sizes));
diag("soak: history (ledger, reservations, archived keys): $half_rows ledger rows, $half_bytes bytes at half time; "
	  . "$end_rows rows, $end_bytes bytes at the end");

$node->stop;
done_testing();
