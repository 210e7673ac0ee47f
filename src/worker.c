/*
 * worker.c
 *	  The background worker: merges queued hot-row movements into their stock
 *	  rows, expires reservations past their ttl, archives history older
 *	  than inventory.history_retention (passes.c does the work), and applies
 *	  the automatic hot-row rule (autohot.c).
 *
 * Registered from _PG_init (so the library must be preloaded), it connects
 * to inventory.database.  With inventory.serve_all_databases on (the
 * default) it is also the launcher: every ten seconds it lists the
 * databases and starts a worker like itself (a dynamic one, with the
 * database's oid as its argument) in each that has none; a worker that finds
 * no extension in its database exits at once, and is tried again 30 seconds
 * later.  Each worker claims its database's slot of worker_status(), so two
 * never serve one database.  Every worker then lives on its latch: every
 * inventory.merge_interval it runs a merge pass (one transaction), every
 * inventory.expire_interval an expiry pass (batches, each its own
 * transaction), and with inventory.auto_hot on, every
 * inventory.auto_hot_interval it promotes the rows whose writers queued and
 * demotes the ones gone quiet (each its own transaction).  A pass that fails is logged, counted in worker_status(),
 * rolled back, and the worker goes on.  It exits on SIGTERM (die) with a non-zero code, and after
 * any crash the postmaster restarts it (bgw_restart_time), so it is always
 * there while the server runs.  Everything it does is also available to
 * admins as inventory.merge() and inventory.expire().
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "inventory.h"
#include "hot.h"

PGDLLEXPORT void InvWorkerMain(Datum main_arg);

char	   *InvWorkerDatabase = NULL;
static bool ServeAllDatabases = true;
static bool ServeDatabase = true;
static int	MergeInterval = 200;
static int	ExpireInterval = 1000;
int			InvExpireBatch = 1000;
int			InvHistoryRetention = 0;

/* Rows the automatic rule demotes per interval, at most. */
#define MAX_DEMOTIONS 16

/* Memory that outlives the transactions of one pass (the automatic rule's,
 * the launcher's), reset after it. */
static MemoryContext PassContext = NULL;

/* This worker's slot of worker_status(), in shared memory. */
static InvWorkerStats *MyStats = NULL;

/* How often the launcher lists the databases, and how long it waits before
 * starting a worker again in a database whose worker stopped. */
#define LAUNCH_INTERVAL_MS 10000
/* How long an expiry or archiving pass goes on before it lets the next
 * interval go on (merged mode pauses while a pass runs). */
#define PASS_BUDGET_MS 500
/* How often, at most, the launcher runs a pass it was asked for. */
#define ASKED_INTERVAL_MS 1000
#define RELAUNCH_SECS 30
#define MAX_LAUNCHED 256

/* The launcher's memory of when it last started a worker, by database. */
typedef struct Launched
{
	Oid			dbid;
	TimestampTz at;
} Launched;
static Launched LaunchedAt[MAX_LAUNCHED];
static int	NLaunched = 0;

/* Define the worker's settings and register it (from _PG_init). */
void
InvWorkerInit(void)
{
	DefineCustomIntVariable("inventory.merge_interval",
							"Time between the worker's merges of queued hot-row movements.",
							NULL,
							&MergeInterval,
							200, 1, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("inventory.expire_interval",
							"Time between the worker's passes that expire reservations.",
							NULL,
							&ExpireInterval,
							1000, 1, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("inventory.expire_batch",
							"Most reservations of one stock row the worker expires per pass.",
							NULL,
							&InvExpireBatch,
							1000, 1, INT_MAX,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("inventory.history_retention",
							"How long history is kept before the worker archives it (0: for ever).",
							"Ledger rows older than this fold into checkpoints, keys into digests, concluded reservations go.",
							&InvHistoryRetention,
							0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("inventory.serve_all_databases",
							 "Whether workers serve every database where the extension is installed.",
							 "Off: only inventory.database has a worker.",
							 &ServeAllDatabases,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("inventory.serve_database",
							 "Whether a worker serves this database.",
							 "Set per database (ALTER DATABASE ... SET inventory.serve_database = off) to keep the worker's passes and merged mode out of it.",
							 &ServeDatabase,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	/* PGC_POSTMASTER settings and workers only at server start */
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomStringVariable("inventory.database",
							   "Database the inventory worker connects to.",
							   "The database where CREATE EXTENSION inventory was run.",
							   &InvWorkerDatabase,
							   "postgres",
							   PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);

	InvRegisterWorker("inventory worker", "InvWorkerMain");
}

/*
 * A background worker of this library: it needs shared memory and a
 * database connection, and starts once recovery is over.
 */
static void
FillWorker(BackgroundWorker *worker, const char *name, const char *function)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	strlcpy(worker->bgw_library_name, "inventory", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker->bgw_name, name, BGW_MAXLEN);
	strlcpy(worker->bgw_type, name, BGW_MAXLEN);
}

/*
 * Register a worker at server start; the postmaster restarts it 5 seconds
 * after it exits abnormally.
 */
void
InvRegisterWorker(const char *name, const char *function)
{
	BackgroundWorker worker;

	FillWorker(&worker, name, function);
	worker.bgw_restart_time = 5;
	RegisterBackgroundWorker(&worker);
}

/*
 * The start of every worker of this library: signal handlers, a connection
 * to the database dbid (inventory.database if invalid), and transactions of
 * the kind every call is written for (read committed, read-write), whatever
 * the database's defaults say.
 */
void
InvWorkerStart(const char *name, Oid dbid)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	if (OidIsValid(dbid))
		BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	else
		BackgroundWorkerInitializeConnection(InvWorkerDatabase, NULL, 0);
	pgstat_report_appname(name);
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off",
					PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * Durable locally, without waiting for synchronous standbys: no pass
	 * acknowledges anything to a client (a pass lost in a failover is run
	 * again), and merged-mode callers wait for the standbys themselves.  So
	 * a standby that is away never holds up the worker.
	 */
	SetConfigOption("synchronous_commit", "local", PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * Start a pass: a transaction, SPI, a snapshot; false if the database has
 * no extension, or one older than the library (it is left alone until
 * ALTER EXTENSION inventory UPDATE).
 */
static bool
BeginPass(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "inventory worker: SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	return InvSchemaIsCurrent();
}

/* End a pass: commit. */
static void
EndPass(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
}

/* One merge pass, in one transaction; a row that fails is counted alone. */
static void
MergePass(void *arg)
{
	InvMergeResult result;
	char		last_error[sizeof(((InvWorkerStats *) 0)->last_error)] = "";

	pgstat_report_activity(STATE_RUNNING, "merge");
	memset(&result, 0, sizeof(result));
	if (BeginPass())
		InvMergePass(true, &result);
	if (result.last_error)
		strlcpy(last_error, result.last_error, sizeof(last_error));
	EndPass();

	SpinLockAcquire(&InvState->mutex);
	MyStats->last_merge_at = GetCurrentTimestamp();
	MyStats->merge_passes++;
	MyStats->rows_merged += result.rows;
	MyStats->movements_merged += result.moved;
	MyStats->errors += result.failed;
	if (last_error[0] != '\0')
		strlcpy(MyStats->last_error, last_error,
				sizeof(MyStats->last_error));
	SpinLockRelease(&InvState->mutex);
}

/*
 * One expiry pass: batches of at most inventory.expire_batch reservations per
 * stock row, each batch its own transaction, until nothing overdue is left
 * that is not locked by someone else, or PASS_BUDGET_MS have gone (merged
 * mode pauses while a pass runs; the next pass goes on).  Its place is the
 * table itself (held and overdue), so after a restart it simply goes on.
 */
static void
ExpirePass(void *arg)
{
	int64		expired;
	int64		total = 0;
	TimestampTz start = GetCurrentTimestamp();

	pgstat_report_activity(STATE_RUNNING, "expire");
	do
	{
		expired = 0;
		if (BeginPass())
			expired = InvExpirePass(InvExpireBatch, true);
		EndPass();
		total += expired;
		CHECK_FOR_INTERRUPTS();
	} while (expired > 0 &&
			 !TimestampDifferenceExceeds(start, GetCurrentTimestamp(), PASS_BUDGET_MS));

	SpinLockAcquire(&InvState->mutex);
	MyStats->last_expire_at = GetCurrentTimestamp();
	MyStats->expire_passes++;
	MyStats->expired += total;
	SpinLockRelease(&InvState->mutex);
}

/*
 * One archiving pass (inventory.history_retention set): history older than
 * the retention when the pass starts, archived in batches, each its own
 * transaction, until none is left or PASS_BUDGET_MS have gone (as for
 * expiry); a batch takes no stock row's lock.
 */
static void
ArchivePass(void *arg)
{
	int64		folded;
	int64		dropped;
	int64		total = 0;
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz before = start - (int64) InvHistoryRetention * USECS_PER_SEC;

	if (InvHistoryRetention <= 0)
		return;
	pgstat_report_activity(STATE_RUNNING, "archive");
	do
	{
		folded = dropped = 0;
		if (BeginPass())
			folded = InvArchiveBatch(before, INV_ARCHIVE_BATCH, &dropped);
		EndPass();
		total += folded;
		CHECK_FOR_INTERRUPTS();
	} while ((folded > 0 || dropped > 0) &&
			 !TimestampDifferenceExceeds(start, GetCurrentTimestamp(), PASS_BUDGET_MS));

	SpinLockAcquire(&InvState->mutex);
	MyStats->last_archive_at = GetCurrentTimestamp();
	MyStats->archived += total;
	SpinLockRelease(&InvState->mutex);
}

/* Run a pass; an error is logged, counted and rolled back, and we go on. */
static void
RunPass(void (*pass) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		pass(arg);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();

		SpinLockAcquire(&InvState->mutex);
		MyStats->errors++;
		strlcpy(MyStats->last_error, edata->message ? edata->message : "",
				sizeof(MyStats->last_error));
		SpinLockRelease(&InvState->mutex);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* A promotion or a demotion by the automatic rule. */
typedef struct AutoHotChange
{
	const InvRowTally *row;
	bool		promote;
} AutoHotChange;

/* Make one row hot or ordinary for the rule, in a transaction of its own. */
static void
ChangeHot(void *arg)
{
	AutoHotChange *change = arg;
	bool		changed = false;

	pgstat_report_activity(STATE_RUNNING, change->promote ? "auto_hot: promote" : "auto_hot: demote");
	if (BeginPass())
		changed = change->promote ? InvAutoHotPromote(change->row)
			: InvAutoHotDemote(change->row);
	EndPass();
	if (!changed)
		return;
	SpinLockAcquire(&InvState->mutex);
	if (change->promote)
		MyStats->promoted++;
	else
		MyStats->demoted++;
	SpinLockRelease(&InvState->mutex);
}

/* Rows to change (InvRowTally), and how many. */
typedef struct RowList
{
	InvRowTally *rows;
	int			n;
} RowList;

/* The rows gone quiet, found in a transaction (it needs the stock table). */
static void
FindQuiet(void *arg)
{
	RowList    *quiet = arg;
	InvRowTally *rows;

	if (BeginPass())
	{
		/* kept past the transaction, for the changes that follow */
		rows = InvAutoHotQuiet(MAX_DEMOTIONS, &quiet->n);
		quiet->rows = MemoryContextAlloc(PassContext, sizeof(InvRowTally) * Max(quiet->n, 1));
		memcpy(quiet->rows, rows, sizeof(InvRowTally) * quiet->n);
	}
	EndPass();
}

/*
 * The automatic rule, once an interval: promote the rows whose writers
 * queued, then demote the rows gone quiet, each change on its own (one that
 * fails, e.g. after lock_timeout, is logged, and tried again later).
 */
static void
AutoHotPass(void)
{
	MemoryContext old = MemoryContextSwitchTo(PassContext);
	RowList		queued = {NULL, 0};
	RowList		quiet = {NULL, 0};

	queued.rows = InvAutoHotCandidates(&queued.n);
	for (int i = 0; i < queued.n; i++)
	{
		AutoHotChange change = {&queued.rows[i], true};

		RunPass(ChangeHot, &change);
	}
	RunPass(FindQuiet, &quiet);
	for (int i = 0; i < quiet.n; i++)
	{
		AutoHotChange change = {&quiet.rows[i], false};

		RunPass(ChangeHot, &change);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(PassContext);
}

/* Milliseconds from now until last + interval (0 if due). */
static long
MsUntil(TimestampTz last, int interval, TimestampTz now)
{
	long		ms = (long) ((last + (int64) interval * 1000 - now) / 1000);

	return Max(ms, 0);
}

/*
 * Take this database's slot of worker_status() (a slot kept from an earlier
 * worker of it, or a free one, or one whose database has no worker now);
 * false if another worker serves the database, the database is set aside
 * for a command (databases.c), or no slot is left.
 */
static bool
ClaimStats(void)
{
	InvWorkerStats *mine = NULL;
	InvWorkerStats *spare = NULL;
	bool		taken = false;

	SpinLockAcquire(&InvState->mutex);
	for (int i = 0; i < INV_MAX_ASIDE; i++)
		taken |= InvState->aside[i].dbid == MyDatabaseId;
	for (int i = 0; i < INV_MAX_DATABASES && mine == NULL; i++)
	{
		InvWorkerStats *s = &InvState->workers[i];

		if (s->dbid == MyDatabaseId)
			mine = s;
		else if (s->pid == 0 && (spare == NULL || !OidIsValid(s->dbid)))
			spare = s;
	}
	if (mine != NULL && mine->pid != 0)
		taken = true;
	else if (mine == NULL && spare != NULL && !taken)
	{
		memset(spare, 0, sizeof(*spare));
		spare->dbid = MyDatabaseId;
		InvStatsClear((int) (spare - InvState->workers));
		mine = spare;
	}
	if (mine != NULL && !taken)
	{
		mine->pid = MyProcPid;
		mine->started_at = GetCurrentTimestamp();
		mine->launch_now = false;
		mine->warned = false;
		mine->opted_out = false;
		MyStats = mine;
	}
	SpinLockRelease(&InvState->mutex);
	return MyStats != NULL;
}

/* On exit: the database has no worker now (its figures stay). */
static void
ReleaseStats(int code, Datum arg)
{
	SpinLockAcquire(&InvState->mutex);
	MyStats->pid = 0;
	if (InvState->launcher == MyLatch)
		InvState->launcher = NULL;
	SpinLockRelease(&InvState->mutex);
}

/* Whether CREATE EXTENSION inventory was run in this database. */
static bool
ExtensionInstalled(void)
{
	bool		installed;

	StartTransactionCommand();
	installed = OidIsValid(get_extension_oid("inventory", true));
	CommitTransactionCommand();
	return installed;
}

/*
 * A worker started by the launcher whose database has no extension (any
 * more), or that is not to be served: it leaves, giving up its slot; or,
 * in a database set to inventory.serve_database = off (read as the worker
 * connected: changing it makes the worker start again, see databases.c),
 * keeping the slot, noted so that the launcher leaves the database alone.
 */
static void
LeaveIfUnserved(void)
{
	if (ServeAllDatabases && ServeDatabase && ExtensionInstalled())
		return;
	SpinLockAcquire(&InvState->mutex);
	if (ServeAllDatabases && !ServeDatabase)
		MyStats->opted_out = true;
	else
		memset(MyStats, 0, sizeof(*MyStats));
	SpinLockRelease(&InvState->mutex);
	proc_exit(0);
}

/*
 * Whether the launcher may start a worker in the database now: asked to at
 * once (launch_now), or none started there within RELAUNCH_SECS (a worker
 * that keeps failing is not started in a loop); if so, remember that it
 * does.
 */
static bool
MayLaunch(Oid dbid, bool now_asked, TimestampTz now)
{
	int			i;

	for (i = 0; i < NLaunched && LaunchedAt[i].dbid != dbid; i++)
		;
	if (i < NLaunched && !now_asked &&
		!TimestampDifferenceExceeds(LaunchedAt[i].at, now, RELAUNCH_SECS * 1000))
		return false;
	if (i == NLaunched)
	{
		if (NLaunched == MAX_LAUNCHED)
			return false;
		NLaunched++;
	}
	LaunchedAt[i].dbid = dbid;
	LaunchedAt[i].at = now;
	return true;
}

/* A database the launcher looks at: from pg_database, with its slot's state. */
typedef struct LaunchCandidate
{
	Oid			dbid;
	char	   *name;
	bool		known;			/* has a slot: the extension is there */
	bool		running;		/* a worker serves it */
	bool		now_asked;		/* registered just now, or back from a command */
	bool		warned;
} LaunchCandidate;

/*
 * Read the launcher's view of one database from its slot, and lift notes of
 * databases set aside by backends that are gone.
 */
static void
ReadSlots(LaunchCandidate *c)
{
	SpinLockAcquire(&InvState->mutex);
	for (int i = 0; i < INV_MAX_DATABASES; i++)
	{
		InvWorkerStats *s = &InvState->workers[i];

		if (s->dbid != c->dbid)
			continue;
		c->known = true;
		/* a database that opted out is left alone unless asked again */
		c->running = s->pid != 0 || (s->opted_out && !s->launch_now);
		c->now_asked = s->launch_now;
		c->warned = s->warned;
		s->launch_now = false;
	}
	for (int i = 0; i < INV_MAX_ASIDE; i++)
		if (InvState->aside[i].dbid == c->dbid)
			c->running = true;	/* not now: a command needs it alone */
	SpinLockRelease(&InvState->mutex);
}

/* Forget the slots of databases that are gone (dropped). */
static void
ForgetDropped(Oid *dbids, int n)
{
	SpinLockAcquire(&InvState->mutex);
	for (int i = 0; i < INV_MAX_DATABASES; i++)
	{
		InvWorkerStats *s = &InvState->workers[i];
		bool		exists = false;

		for (int j = 0; j < n && !exists; j++)
			exists = dbids[j] == s->dbid;
		if (OidIsValid(s->dbid) && !exists && s->pid == 0)
			memset(s, 0, sizeof(*s));
	}
	SpinLockRelease(&InvState->mutex);
}

/* Lift the notes of databases set aside by backends that are gone. */
static void
LiftStaleNotes(void)
{
	int			pids[INV_MAX_ASIDE];

	SpinLockAcquire(&InvState->mutex);
	for (int i = 0; i < INV_MAX_ASIDE; i++)
		pids[i] = OidIsValid(InvState->aside[i].dbid) ? InvState->aside[i].pid : 0;
	SpinLockRelease(&InvState->mutex);
	for (int i = 0; i < INV_MAX_ASIDE; i++)
	{
		/* (no lookup under the spinlock) */
		if (pids[i] == 0 || BackendPidGetProc(pids[i]) != NULL)
			continue;
		SpinLockAcquire(&InvState->mutex);
		if (InvState->aside[i].pid == pids[i])
			InvState->aside[i].dbid = InvalidOid;
		SpinLockRelease(&InvState->mutex);
	}
}

/* Has a backend asked the launcher to start a worker at once? */
static bool
LaunchAsked(void)
{
	bool		asked = false;

	SpinLockAcquire(&InvState->mutex);
	for (int i = 0; i < INV_MAX_DATABASES; i++)
		asked |= InvState->workers[i].launch_now && InvState->workers[i].pid == 0;
	SpinLockRelease(&InvState->mutex);
	return asked;
}

/* How many databases have a slot (the extension, as far as is known). */
static int
KnownDatabases(void)
{
	int			n = 0;

	SpinLockAcquire(&InvState->mutex);
	for (int i = 0; i < INV_MAX_DATABASES; i++)
		n += OidIsValid(InvState->workers[i].dbid) ? 1 : 0;
	SpinLockRelease(&InvState->mutex);
	return n;
}

/*
 * The launcher's pass (see the file header): a worker for every database
 * known to have the extension that has none, and at server start a probe
 * of every other database that allows connections (the worker started
 * there finds out whether the extension is there, and leaves if not).  A
 * database whose worker cannot start for want of a background worker slot
 * is logged once, with the number of slots the library needs.
 */
static void
LaunchWorkers(void *arg)
{
	static bool probed = false;
	LaunchCandidate *cands;
	Oid		   *dbids;
	int			n;
	bool		all_probed = true;
	TimestampTz now = GetCurrentTimestamp();

	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "inventory worker: SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_execute("SELECT oid, datname::text FROM pg_catalog.pg_database"
					" WHERE datallowconn AND NOT datistemplate", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "inventory worker: cannot list the databases");
	n = (int) SPI_processed;
	cands = MemoryContextAllocZero(PassContext, sizeof(LaunchCandidate) * Max(n, 1));
	dbids = MemoryContextAlloc(PassContext, sizeof(Oid) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		cands[i].dbid = dbids[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																	SPI_tuptable->tupdesc, 1, &isnull));
		cands[i].name = MemoryContextStrdup(PassContext, InvResultText(i, 2));
	}
	EndPass();

	ForgetDropped(dbids, n);
	LiftStaleNotes();
	for (int i = 0; i < n; i++)
	{
		LaunchCandidate *c = &cands[i];
		BackgroundWorker worker;

		ReadSlots(c);
		if (c->dbid == MyDatabaseId || c->running || (!c->known && probed) ||
			!MayLaunch(c->dbid, c->now_asked, now))
			continue;
		FillWorker(&worker, "inventory worker", "InvWorkerMain");
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		worker.bgw_main_arg = ObjectIdGetDatum(c->dbid);
		if (RegisterDynamicBackgroundWorker(&worker, NULL))
			continue;
		/* no slot: a probe tries again next time, a known database says so */
		MayLaunch(c->dbid, true, 0);
		if (!c->known)
			all_probed = false;
		else if (!c->warned)
		{
			/* a slot per database known, the launcher's own among them */
			int			needed = KnownDatabases();

			ereport(WARNING,
					(errmsg("inventory: no background worker slot is free for the worker of database \"%s\"",
							c->name),
					 errdetail("The library needs %d background worker slots for the databases where the extension is installed (one per database, the launcher included), besides those of other background workers (the logical replication launcher, parallel query, other extensions); max_worker_processes is %d.",
							   needed, max_worker_processes),
					 errhint("Raise max_worker_processes (a restart is needed).  Until then calls in database \"%s\" go on: reservations expire lazily, and hot rows use the transactional path.",
							 c->name)));
			SpinLockAcquire(&InvState->mutex);
			for (int j = 0; j < INV_MAX_DATABASES; j++)
				if (InvState->workers[j].dbid == c->dbid)
					InvState->workers[j].warned = true;
			SpinLockRelease(&InvState->mutex);
		}
	}
	probed |= all_probed;
	elog(DEBUG1, "inventory launcher: looked at %d databases", n);
	/* every request is answered by this pass (LaunchAsked) */
	SpinLockAcquire(&InvState->mutex);
	for (int i = 0; i < INV_MAX_DATABASES; i++)
		InvState->workers[i].launch_now = false;
	SpinLockRelease(&InvState->mutex);
	MemoryContextReset(PassContext);
}

/*
 * Entry point of the background worker: main_arg is 0 for the worker of
 * inventory.database (the launcher), or the oid of the database a worker
 * started by the launcher serves.
 */
void
InvWorkerMain(Datum main_arg)
{
	Oid			dbid = DatumGetObjectId(main_arg);
	bool		launcher = !OidIsValid(dbid);
	bool		merged = true;
	bool		serve;
	TimestampTz last_merge = 0;
	bool		caught_up = false;	/* a merge pass ran: the backlog is folded */
	TimestampTz last_expire = 0;
	TimestampTz last_auto_hot = 0;
	TimestampTz last_launch = 0;

	InvWorkerStart("inventory worker", dbid);
	PassContext = AllocSetContextCreate(TopMemoryContext, "inventory worker",
										ALLOCSET_DEFAULT_SIZES);
	if (!ClaimStats())
	{
		static InvWorkerStats unshared;

		if (!launcher)
			proc_exit(0);
		/* every slot serves another database: work on, unseen */
		ereport(LOG,
				(errmsg("inventory worker: worker_status() has no room for database \"%s\"",
						InvWorkerDatabase)));
		MyStats = &unshared;
		merged = false;
	}
	before_shmem_exit(ReleaseStats, (Datum) 0);
	if (!launcher)
		LeaveIfUnserved();
	/* the launcher stays, but serves no database that opted out */
	serve = ServeDatabase;
	merged &= serve;
	if (merged)
		InvMergedServe((int) (MyStats - InvState->workers));
	if (launcher)
	{
		SpinLockAcquire(&InvState->mutex);
		InvState->launcher = MyLatch;
		SpinLockRelease(&InvState->mutex);
	}

	for (;;)
	{
		TimestampTz now;
		long		timeout;
		bool		merge_due;
		bool		expire_due;
		bool		auto_hot_due;
		bool		launch_due;
		bool		pause;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* merged-mode callers first: they wait for their batch */
		if (merged)
			InvMergedCommit();

		now = GetCurrentTimestamp();
		merge_due = serve && MsUntil(last_merge, MergeInterval, now) == 0;
		expire_due = serve && MsUntil(last_expire, ExpireInterval, now) == 0;
		auto_hot_due = serve && InvAutoHot &&
			MsUntil(last_auto_hot, InvAutoHotInterval, now) == 0;
		launch_due = launcher && ServeAllDatabases &&
			(MsUntil(last_launch, LAUNCH_INTERVAL_MS, now) == 0 ||
			 (LaunchAsked() && MsUntil(last_launch, ASKED_INTERVAL_MS, now) == 0));

		/*
		 * While a pass runs, merged mode pauses (callers go transactional),
		 * except for a merge pass after the first: it folds only the queue
		 * rows since the last one, and callers wait through it for the
		 * batch after it.
		 */
		pause = merged && (expire_due || auto_hot_due || launch_due ||
						   (merge_due && !caught_up));
		if (pause)
			InvMergedPause();
		if (merge_due)
		{
			RunPass(MergePass, NULL);
			last_merge = now;
			caught_up = true;
		}
		if (expire_due)
		{
			if (!launcher)
				LeaveIfUnserved();
			RunPass(ExpirePass, NULL);
			RunPass(ArchivePass, NULL);
			last_expire = now;
		}
		if (auto_hot_due)
		{
			AutoHotPass();
			last_auto_hot = now;
		}
		if (launch_due)
		{
			RunPass(LaunchWorkers, NULL);
			last_launch = now;
		}
		if (pause)
			InvMergedResume();

		now = GetCurrentTimestamp();
		timeout = LAUNCH_INTERVAL_MS;
		if (serve)
			timeout = Min(MsUntil(last_merge, MergeInterval, now),
						  MsUntil(last_expire, ExpireInterval, now));
		if (serve && InvAutoHot)
			timeout = Min(timeout, MsUntil(last_auto_hot, InvAutoHotInterval, now));
		if (launcher && ServeAllDatabases)
			timeout = Min(timeout, MsUntil(last_launch, LaunchAsked() ? ASKED_INTERVAL_MS
											: LAUNCH_INTERVAL_MS, now));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(timeout, 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
