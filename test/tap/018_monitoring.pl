# What a monitor reads: inventory.stats (answers per call and status) and
# worker_status() (the worker's figures and backlog), with nothing but
# membership of pg_monitor.  Every query of contrib/postgres_exporter.yml
# runs as such a role and gives the figures the calls made; the role can
# read nothing else and reset nothing.  When the Debian package
# prometheus-postgres-exporter is installed, the exporter itself serves them.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename;
use IPC::Run;
use InvNode;

# the worker's expiry pass runs at its start, then hourly: the overdue hold
# made below stays overdue (nothing writes its row), for the backlog figure
my $node = inventory_node('monitoring', "inventory.expire_interval = '1h'\n");
$node->safe_psql('postgres', q{
	CREATE EXTENSION inventory;
	CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
	SELECT inventory.restock('tea', 10, 'po-1');
	SELECT inventory.restock('late', 10, 'po-2');
	SELECT inventory.deduct('tea', 1, 'd1');
	SELECT inventory.deduct('tea', 1, 'd2');
	SELECT inventory.deduct('tea', 1, 'd2');
	SELECT inventory.deduct('tea', 100, 'd3');
	SELECT inventory.reserve('late', 1, 'r1', ttl => '1 millisecond');
});
$node->poll_query_until('postgres', 'SELECT pid IS NOT NULL FROM inventory.worker_status()')
  or die 'no worker';

$node->safe_psql('postgres', 'SELECT pg_sleep(0.01)');

# the queries of the exporter's file
my $file = dirname(__FILE__) . '/../../contrib/postgres_exporter.yml';
my %queries;
my ($name, $block);
for my $line (split /\n/, slurp_file($file))
{
	if ($line =~ /^(\w+):\s*$/) { $name = $1; $block = undef; next; }
	if ($line =~ /^  query: "(.*)"\s*$/) { $queries{$name} = $1; next; }
	if ($line =~ /^  query: \|\s*$/) { $block = ''; next; }
	if (defined $block && $line =~ /^    (.*)$/) { $queries{$name} .= "$1\n"; next; }
	$block = undef;
}
is(join(',', sort keys %queries), 'inventory_answers,inventory_worker', 'the file has its queries');

sub as_monitor
{
	my ($sql) = @_;
	return $node->psql('postgres', $sql, extra_params => [ '-U', 'monitor' ]);
}
for my $q (sort keys %queries)
{
	my ($ret, $out, $err) = as_monitor($queries{$q});
	is($ret, 0, "$q runs as a member of pg_monitor") or diag $err;
	isnt($out, '', "$q returns rows");
}
my ($ret, $out, $err) = as_monitor(q{
	SELECT string_agg(call || ' ' || status || ' ' || calls, ',' ORDER BY call, status)
	  FROM inventory.stats});
is($out, 'deduct duplicate 1,deduct insufficient 1,deduct ok 2,reserve ok 1,restock ok 2',
	'inventory.stats counts every answer by call and status');
($ret, $out, $err) = as_monitor(q{
	SELECT oldest_overdue > interval '0', ledger_past_retention IS NULL FROM inventory.worker_status()});
is($out, 't|t', 'worker_status(): the overdue hold shows, retention is not set');

# a monitor reads figures, and nothing else
for my $sql ('SELECT inventory.stats_reset()', 'SELECT count(*) FROM inventory.ledger',
	"SELECT inventory.deduct('tea', 1, 'm1')")
{
	($ret, $out, $err) = $node->psql('postgres', $sql,
		extra_params => [ '-U', 'monitor', '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/42501/, "a monitor may not: $sql");
}

# the exporter itself, when installed
SKIP:
{
	my $exporter = '/usr/bin/prometheus-postgres-exporter';
	skip 'prometheus-postgres-exporter is not installed', 3 unless -x $exporter;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	local $ENV{DATA_SOURCE_NAME} = 'host=' . $node->host . ' port=' . $node->port
	  . ' user=monitor dbname=postgres sslmode=disable';
	my $h = IPC::Run::start(
		[ $exporter, "--extend.query-path=$file", "--web.listen-address=127.0.0.1:$port",
		  '--disable-default-metrics', '--disable-settings-metrics' ],
		'>', \my $eout, '2>', \my $eerr);
	my $metrics = '';
	for (1 .. 600)
	{
		$metrics = `curl -s http://127.0.0.1:$port/metrics`;
		last if $metrics =~ /inventory_answers_calls/ && $metrics =~ /inventory_worker_running/;
		usleep(100_000);
	}
	$h->kill_kill;
	like($metrics, qr/^inventory_answers_calls\{call="deduct",.*status="ok"\} 2$/m,
		'the exporter serves the answers');
	like($metrics, qr/^inventory_worker_running\{.*\} 1$/m, 'and whether the worker runs');
	like($metrics, qr/^inventory_worker_oldest_overdue_seconds\{.*\} (?:0\.\d*[1-9]|[1-9])/m,
		'and the backlog');
	diag(join("\n", grep { /^inventory_/ } split /\n/, $metrics));
}

# stats_reset() by an admin: the counts start again
$node->safe_psql('postgres', 'SELECT inventory.stats_reset()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM inventory.stats'), '0',
	'stats_reset() sets the counts back to zero');
$node->stop;

done_testing();
