# Shared by scripts/demo and scripts/test: install what is missing, build and
# install the extension, run throwaway PostgreSQL 15 clusters.
#
# PostgreSQL refuses to run as root, so when these scripts run as root the
# server, psql and every test run as the unprivileged "postgres" OS user, in
# a temporary directory that user owns.  Run as any other user, they run as
# that user (the extension must then be installable by it, e.g. via sudo).

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# a locale every Debian 12 has, whatever the caller's environment says
export LANG=C.UTF-8
unset LC_ALL LANGUAGE
PGBIN=/usr/lib/postgresql/15/bin
export PATH="$PGBIN:$PATH"

PACKAGES="make gcc postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
          libtap-parser-sourcehandler-pgtap-perl libipc-run-perl sqlsmith
          postgresql-15-plproxy postgresql-15-cron prometheus-postgres-exporter curl"

# Print a step heading.
step() { printf '\n== %s\n' "$*"; }

# Run a command as the unprivileged OS user that owns the clusters.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- env PATH="$PATH" "$@"
	else
		"$@"
	fi
}

# Install the Debian packages that are missing (root only).
ensure_packages() {
	local missing=""
	for p in $PACKAGES "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages:$missing (install them as root)" >&2
		exit 1
	fi
	step "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# Build the extension with warnings as errors, and install it; arguments go
# to make (e.g. SANITIZE=undefined).
build_install() {
	step "building and installing the extension $*"
	make -s -C "$REPO" PG_CONFIG="$PGBIN/pg_config" WERROR=1 "$@" >/dev/null
	if [ "$(id -u)" = 0 ] || [ -w "$("$PGBIN/pg_config" --pkglibdir)" ]; then
		make -s -C "$REPO" PG_CONFIG="$PGBIN/pg_config" WERROR=1 "$@" install >/dev/null
	else
		sudo make -s -C "$REPO" PG_CONFIG="$PGBIN/pg_config" WERROR=1 "$@" install >/dev/null
	fi
}

# A fresh directory owned by the cluster user.
pg_workdir() {
	local dir
	dir=$(mktemp -d /tmp/inventory.XXXXXX)
	chmod 755 "$dir"
	[ "$(id -u)" = 0 ] && chown postgres: "$dir"
	echo "$dir"
}

# Start a throwaway cluster in $1 with the library preloaded; sockets only.
# $2, if given, is the server executable (a wrapper such as Valgrind's).
# INVENTORY_SERVE_ALL=off: a worker in inventory.database (postgres) only.
# Sets PGHOST, PGPORT, PGDATABASE for the rest of the script.
start_cluster() {
	local dir=$1
	as_pg initdb -D "$dir/data" -U postgres --no-sync -A trust >/dev/null
	cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$dir'
shared_preload_libraries = 'inventory'
max_connections = 300
inventory.serve_all_databases = ${INVENTORY_SERVE_ALL:-on}
shared_buffers = 256MB
fsync = on
synchronous_commit = on
log_line_prefix = '%m [%p] '
EOF
	as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -p "${2:-$PGBIN/postgres}" -t 300 -w start >/dev/null
	export PGHOST=$dir PGPORT=5432 PGUSER=postgres PGDATABASE=postgres
}

# Stop the cluster in $1 (fast) and remove it.
stop_cluster() {
	local dir=$1
	as_pg pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}

# psql as the cluster user: quiet, stop on error, unaligned output.
pgsql() { as_pg psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }
