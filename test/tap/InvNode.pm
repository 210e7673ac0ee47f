# InvNode: the cluster every Perl TAP test of inventory starts from.
package InvNode;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

our @EXPORT = qw(inventory_node start_clients finish_clients);

# A started cluster named $name with the library preloaded, plus the
# caller's postgresql.conf lines (optional).
sub inventory_node
{
	my ($name, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init;
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'inventory'\n" . ($conf // ''));
	$node->start;
	return $node;
}

# Start one psql client per script (SQL whose output lines are "key
# status") on $node's database $db, the scripts written to files named
# $name-1.sql, ...; a client stops at its first error unless on_error_stop
# => 0.  Returns the clients.
sub start_clients
{
	my ($node, $db, $name, $scripts, %opt) = @_;
	my @stop = ($opt{on_error_stop} // 1) ? ('-v', 'ON_ERROR_STOP=1') : ();
	my @clients;
	for my $c (1 .. @$scripts)
	{
		my $file = "${PostgreSQL::Test::Utils::tmp_check}/$name-$c.sql";
		open my $fh, '>', $file or die $!;
		print $fh $scripts->[ $c - 1 ];
		close $fh;
		my %client = (out => '');
		$client{h} = IPC::Run::start(
			[ 'psql', '-X', '-q', '-At', '-F', ' ', @stop, '-d', $node->connstr($db), '-f', $file ],
			'>', \$client{out}, '2>', \my $err);
		push @clients, \%client;
	}
	return \@clients;
}

# Wait for the clients to end; the answers they printed, [key, status] each.
sub finish_clients
{
	my ($clients) = @_;
	my @answers;
	for my $client (@$clients)
	{
		$client->{h}->finish;
		for (split /\n/, $client->{out})
		{
			my ($key, $status) = split / /;
			push @answers, [ $key, $status ] if defined $status && $status ne '';
		}
	}
	return @answers;
}

1;
