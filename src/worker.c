/*
 * worker.c
 *	  The background worker: merges queued hot-row movements into their stock
 *	  rows, expires reservations past their ttl, archives history older
 *	  than inventory.history_retention (passes.c does the work), and applies
 *	  the automatic hot-row rule (autohot.c).
 *
 * Registered from _PG_init (so the library must be preloaded), it connects
 * to inventory.database, and then lives on its latch: every
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
static int	MergeInterval = 200;
static int	ExpireInterval = 1000;
int			InvExpireBatch = 1000;
static int	HistoryRetention = 0;

/* Rows the automatic rule demotes per interval, at most. */
#define MAX_DEMOTIONS 16

/* Memory of the automatic rule's pass, reset after each. */
static MemoryContext AutoHotContext = NULL;

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
 * Register a background worker of this library: it needs shared memory and
 * a database connection, starts once recovery is over, and is restarted
 * 5 seconds after it exits abnormally.
 */
void
InvRegisterWorker(const char *name, const char *function)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "inventory", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker.bgw_name, name, BGW_MAXLEN);
	strlcpy(worker.bgw_type, name, BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/*
 * The start of every worker of this library: signal handlers, a connection
 * to inventory.database, and transactions of the kind every call is written
 * for (read committed, read-write), whatever the database's defaults say.
 */
void
InvWorkerStart(const char *name)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
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
	char		last_error[sizeof(InvState->worker.last_error)] = "";

	pgstat_report_activity(STATE_RUNNING, "merge");
	memset(&result, 0, sizeof(result));
	if (BeginPass())
		InvMergePass(true, &result);
	if (result.last_error)
		strlcpy(last_error, result.last_error, sizeof(last_error));
	EndPass();

	SpinLockAcquire(&InvState->mutex);
	InvState->worker.last_merge_at = GetCurrentTimestamp();
	InvState->worker.merge_passes++;
	InvState->worker.rows_merged += result.rows;
	InvState->worker.movements_merged += result.moved;
	InvState->worker.errors += result.failed;
	if (last_error[0] != '\0')
		strlcpy(InvState->worker.last_error, last_error,
				sizeof(InvState->worker.last_error));
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
	InvState->worker.last_expire_at = GetCurrentTimestamp();
	InvState->worker.expire_passes++;
	InvState->worker.expired += total;
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
	} while (folded == INV_ARCHIVE_BATCH || dropped == INV_ARCHIVE_BATCH);

	SpinLockAcquire(&InvState->mutex);
	InvState->worker.last_archive_at = GetCurrentTimestamp();
	InvState->worker.archived += total;
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
		InvState->worker.errors++;
		strlcpy(InvState->worker.last_error, edata->message ? edata->message : "",
				sizeof(InvState->worker.last_error));
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
		InvState->worker.promoted++;
	else
		InvState->worker.demoted++;
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
		quiet->rows = MemoryContextAlloc(AutoHotContext, sizeof(InvRowTally) * Max(quiet->n, 1));
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
	MemoryContext old = MemoryContextSwitchTo(AutoHotContext);
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
	MemoryContextReset(AutoHotContext);
}

/* Milliseconds from now until last + interval (0 if due). */
static long
MsUntil(TimestampTz last, int interval, TimestampTz now)
{
	long		ms = (long) ((last + (int64) interval * 1000 - now) / 1000);

	return Max(ms, 0);
}

/* Entry point of the background worker. */
void
InvWorkerMain(Datum main_arg)
{
	TimestampTz last_merge = 0;
	TimestampTz last_expire = 0;
	TimestampTz last_auto_hot = 0;

	InvWorkerStart("inventory worker");
	AutoHotContext = AllocSetContextCreate(TopMemoryContext, "inventory auto_hot",
										   ALLOCSET_DEFAULT_SIZES);

	SpinLockAcquire(&InvState->mutex);
	InvState->worker.dbid = MyDatabaseId;
	InvState->worker.pid = MyProcPid;
	InvState->worker.started_at = GetCurrentTimestamp();
	SpinLockRelease(&InvState->mutex);

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
			RunPass(ExpirePass, NULL);
			RunPass(ArchivePass, NULL);
			last_expire = now;
		}
		if (InvAutoHot && MsUntil(last_auto_hot, InvAutoHotInterval, now) == 0)
		{
			AutoHotPass();
			last_auto_hot = now;
		}

		now = GetCurrentTimestamp();
		timeout = Min(MsUntil(last_merge, MergeInterval, now),
					  MsUntil(last_expire, ExpireInterval, now));
		if (InvAutoHot)
			timeout = Min(timeout, MsUntil(last_auto_hot, InvAutoHotInterval, now));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(timeout, 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
