# InvNode: the cluster every Perl TAP test of inventory starts from.
package InvNode;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;

our @EXPORT = qw(inventory_node);

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

1;
