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
static int	MergeInterval = 200;
static int	ExpireInterval = 1000;
int			InvExpireBatch = 1000;
static int	HistoryRetention = 0;

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
							&HistoryRetention,
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
 * that is not locked by someone else.  Its place is the table itself (held
 * and overdue), so after a restart it simply goes on.
 */
static void
ExpirePass(void *arg)
{
	int64		expired;
	int64		total = 0;

	pgstat_report_activity(STATE_RUNNING, "expire");
	do
	{
		expired = 0;
		if (BeginPass())
			expired = InvExpirePass(InvExpireBatch, true);
		EndPass();
		total += expired;
		CHECK_FOR_INTERRUPTS();
	} while (expired > 0);

	SpinLockAcquire(&InvState->mutex);
	MyStats->last_expire_at = GetCurrentTimestamp();
	MyStats->expire_passes++;
	MyStats->expired += total;
	SpinLockRelease(&InvState->mutex);
}

/*
 * One archiving pass (inventory.history_retention set): history older than
 * the retention archived in batches, each its own transaction, until none
 * is left; a batch takes no stock row's lock.
 */
static void
ArchivePass(void *arg)
{
	int64		folded;
	int64		dropped;
	int64		total = 0;

	if (HistoryRetention <= 0)
		return;
	pgstat_report_activity(STATE_RUNNING, "archive");
	do
	{
		folded = dropped = 0;
		if (BeginPass())
			folded = InvArchiveBatch(GetCurrentTimestamp() -
									 (int64) HistoryRetention * USECS_PER_SEC,
									 INV_ARCHIVE_BATCH, &dropped);
		EndPass();
		total += folded;
		CHECK_FOR_INTERRUPTS();
	} while (folded > 0 || dropped > 0);

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
 * false if another worker serves the database, or no slot is left.
 */
static bool
ClaimStats(void)
{
	InvWorkerStats *mine = NULL;
	InvWorkerStats *spare = NULL;
	bool		taken = false;

	SpinLockAcquire(&InvState->mutex);
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
	else if (mine == NULL && spare != NULL)
	{
		memset(spare, 0, sizeof(*spare));
		spare->dbid = MyDatabaseId;
		mine = spare;
	}
	if (mine != NULL && !taken)
	{
		mine->pid = MyProcPid;
		mine->started_at = GetCurrentTimestamp();
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
 * more), or that is not to be served: it leaves, giving up its slot.
 */
static void
LeaveIfUnserved(void)
{
	if (ServeAllDatabases && ExtensionInstalled())
		return;
	SpinLockAcquire(&InvState->mutex);
	memset(MyStats, 0, sizeof(*MyStats));
	SpinLockRelease(&InvState->mutex);
	proc_exit(0);
}

/* Whether a worker serves the database now. */
static bool
Served(Oid dbid)
{
	bool		served = false;

	SpinLockAcquire(&InvState->mutex);
	for (int i = 0; i < INV_MAX_DATABASES; i++)
		if (InvState->workers[i].dbid == dbid && InvState->workers[i].pid != 0)
			served = true;
	SpinLockRelease(&InvState->mutex);
	return served;
}

/*
 * Whether the launcher may start a worker in the database now (none started
 * there within RELAUNCH_SECS), and if so, remember that it does.
 */
static bool
MayLaunch(Oid dbid, TimestampTz now)
{
	int			i;

	for (i = 0; i < NLaunched && LaunchedAt[i].dbid != dbid; i++)
		;
	if (i < NLaunched &&
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

/*
 * The launcher's pass: a worker for every database that allows connections
 * and has none (the worker itself finds out whether the extension is there).
 */
static void
LaunchWorkers(void *arg)
{
	Oid		   *dbids;
	int			n;
	TimestampTz now = GetCurrentTimestamp();

	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "inventory worker: SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_execute("SELECT oid FROM pg_catalog.pg_database"
					" WHERE datallowconn AND NOT datistemplate", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "inventory worker: cannot list the databases");
	n = (int) SPI_processed;
	dbids = MemoryContextAlloc(PassContext, sizeof(Oid) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		dbids[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
												  SPI_tuptable->tupdesc, 1, &isnull));
	}
	EndPass();

	for (int i = 0; i < n; i++)
	{
		BackgroundWorker worker;

		if (dbids[i] == MyDatabaseId || Served(dbids[i]) || !MayLaunch(dbids[i], now))
			continue;
		FillWorker(&worker, "inventory worker", "InvWorkerMain");
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		worker.bgw_main_arg = ObjectIdGetDatum(dbids[i]);
		if (!RegisterDynamicBackgroundWorker(&worker, NULL))
			ereport(LOG,
					(errmsg("inventory worker: no background worker slot is free for another database"),
					 errhint("Raise max_worker_processes.")));
	}
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
	TimestampTz last_merge = 0;
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
	}
	before_shmem_exit(ReleaseStats, (Datum) 0);
	if (!launcher)
		LeaveIfUnserved();

	for (;;)
	{
		TimestampTz now;
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		now = GetCurrentTimestamp();
		if (MsUntil(last_merge, MergeInterval, now) == 0)
		{
			RunPass(MergePass, NULL);
			last_merge = now;
		}
		if (MsUntil(last_expire, ExpireInterval, now) == 0)
		{
			if (!launcher)
				LeaveIfUnserved();
			RunPass(ExpirePass, NULL);
			RunPass(ArchivePass, NULL);
			last_expire = now;
		}
		if (InvAutoHot && MsUntil(last_auto_hot, InvAutoHotInterval, now) == 0)
		{
			AutoHotPass();
			last_auto_hot = now;
		}
		if (launcher && ServeAllDatabases && MsUntil(last_launch, LAUNCH_INTERVAL_MS, now) == 0)
		{
			RunPass(LaunchWorkers, NULL);
			last_launch = now;
		}

		now = GetCurrentTimestamp();
		timeout = Min(MsUntil(last_merge, MergeInterval, now),
					  MsUntil(last_expire, ExpireInterval, now));
		if (InvAutoHot)
			timeout = Min(timeout, MsUntil(last_auto_hot, InvAutoHotInterval, now));
		if (launcher && ServeAllDatabases)
			timeout = Min(timeout, MsUntil(last_launch, LAUNCH_INTERVAL_MS, now));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(timeout, 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
