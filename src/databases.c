/*
 * databases.c
 *	  The databases the workers serve, and how they stand aside for a
 *	  user's commands on a database.
 *
 * Every database where the extension is installed has a worker of its own
 * (worker.c), which also takes that database's merged-mode requests
 * (merged.c); the worker of inventory.database is also the launcher that
 * starts the others.  The databases to serve are kept in shared memory, in
 * the slots of worker_status(): a database gets one when CREATE EXTENSION
 * inventory runs there, when the first call is made there (a database
 * restored, or copied from a template), or when the launcher's probe of
 * every database at server start finds the extension there.  Registering a
 * database that has no worker wakes the launcher, which starts one at once.
 *
 * A worker holds a connection to its database, and DROP DATABASE, ALTER
 * DATABASE ... RENAME TO or SET TABLESPACE, and CREATE DATABASE ...
 * TEMPLATE refuse a database that anyone else is connected to.  So a
 * ProcessUtility hook (the way TimescaleDB's loader steps its scheduler
 * aside) sets the database aside first: it notes the database in shared
 * memory, so that no worker of ours connects to it, asks its worker to
 * leave (SIGTERM), and waits until it has (the command itself would wait up
 * to 5 seconds for other sessions too).  When the command is over, the note
 * is lifted and the launcher is woken: the worker comes back wherever the
 * database still exists.  A note whose backend died with it (terminated
 * during the command) is lifted by the launcher.
 */
#include "postgres.h"

#include <signal.h>

#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/procarray.h"
#include "tcop/utility.h"
#include "utils/timestamp.h"

#include "inventory.h"
#include "hot.h"

/* How long a command waits for a database's worker to leave, at most. */
#define LEAVE_TIMEOUT_MS 10000

static ProcessUtility_hook_type PrevProcessUtility = NULL;

/* The database this backend registered (InvServeDatabase). */
static Oid	Registered = InvalidOid;

/*
 * This database's slot of worker_status() (its index), or -1 if it has
 * none.  Kept per backend, and checked on each use: a slot passes to
 * another database when its own is dropped.
 */
int
InvDatabaseSlot(void)
{
	static int	slot = -1;

	if (InvState == NULL)
		return -1;
	if (slot >= 0 && InvState->workers[slot].dbid == MyDatabaseId)
		return slot;
	slot = -1;
	SpinLockAcquire(&InvState->mutex);
	for (int i = 0; i < INV_MAX_DATABASES && slot < 0; i++)
		if (InvState->workers[i].dbid == MyDatabaseId)
			slot = i;
	SpinLockRelease(&InvState->mutex);
	return slot;
}

/* Is the database set aside for a command (its workers stay away)? */
bool
InvSetAside(Oid dbid)
{
	bool		aside = false;

	SpinLockAcquire(&InvState->mutex);
	for (int i = 0; i < INV_MAX_ASIDE; i++)
		aside |= InvState->aside[i].dbid == dbid;
	SpinLockRelease(&InvState->mutex);
	return aside;
}

/* Wake the launcher, if it runs. */
static void
WakeLauncher(void)
{
	Latch	   *launcher;

	SpinLockAcquire(&InvState->mutex);
	launcher = InvState->launcher;
	SpinLockRelease(&InvState->mutex);
	if (launcher != NULL)
		SetLatch(launcher);
}

/*
 * This database has the extension: make sure it has a slot of
 * worker_status(), and if no worker serves it, have the launcher start one
 * now.  Done once per backend (and again by CREATE EXTENSION).
 */
void
InvServeDatabase(void)
{
	InvWorkerStats *slot = NULL;
	InvWorkerStats *free = NULL;
	bool		wake = false;

	if (Registered == MyDatabaseId || InvState == NULL || IsBackgroundWorker)
		return;
	Registered = MyDatabaseId;
	SpinLockAcquire(&InvState->mutex);
	for (int i = 0; i < INV_MAX_DATABASES && slot == NULL; i++)
	{
		InvWorkerStats *s = &InvState->workers[i];

		if (s->dbid == MyDatabaseId)
			slot = s;
		else if (free == NULL && !OidIsValid(s->dbid))
			free = s;
	}
	if (slot == NULL && free != NULL)
	{
		memset(free, 0, sizeof(*free));
		free->dbid = MyDatabaseId;
		InvStatsClear((int) (free - InvState->workers));
		slot = free;
	}
	if (slot != NULL && slot->pid == 0 && !slot->launch_now && !slot->opted_out)
		wake = slot->launch_now = true;
	SpinLockRelease(&InvState->mutex);
	if (slot == NULL)
		ereport(LOG,
				(errmsg("inventory: worker_status() has no room for database \"%s\"; no worker will serve it",
						get_database_name(MyDatabaseId))));
	if (wake)
		WakeLauncher();
}

/*
 * Set a database aside for a command (see the file header): note it, ask
 * its worker to leave and wait until it has.  Returns the note's index, or
 * -1 when no note was free (the command then meets the worker, if any).
 */
static pg_noinline int
SetAside(Oid dbid, const char *command)
{
	int			note = -1;
	int			pid = 0;
	TimestampTz start = GetCurrentTimestamp();

	SpinLockAcquire(&InvState->mutex);
	for (int i = 0; i < INV_MAX_ASIDE && note < 0; i++)
		if (!OidIsValid(InvState->aside[i].dbid))
		{
			note = i;
			InvState->aside[i].dbid = dbid;
			InvState->aside[i].pid = MyProcPid;
		}
	for (int i = 0; i < INV_MAX_DATABASES; i++)
		if (InvState->workers[i].dbid == dbid && InvState->workers[i].pid != 0)
			pid = InvState->workers[i].pid;
	SpinLockRelease(&InvState->mutex);
	if (pid == 0)
		return note;

	ereport(LOG,
			(errmsg("inventory: the worker of database %u leaves for %s", dbid, command)));
	(void) kill(pid, SIGTERM);
	for (;;)
	{
		bool		gone = true;

		SpinLockAcquire(&InvState->mutex);
		for (int i = 0; i < INV_MAX_DATABASES; i++)
			if (InvState->workers[i].dbid == dbid && InvState->workers[i].pid != 0)
				gone = false;
		SpinLockRelease(&InvState->mutex);
		if (gone || TimestampDifferenceExceeds(start, GetCurrentTimestamp(), LEAVE_TIMEOUT_MS))
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return note;
}

/*
 * Lift a note of SetAside: the launcher starts the worker again now; or,
 * when the database was dropped, forgets its slot (a worker started there
 * would only fail to connect, and say so in the log).
 */
static void
StandBack(int note, Oid dbid, bool dropped)
{
	SpinLockAcquire(&InvState->mutex);
	if (note >= 0)
		InvState->aside[note].dbid = InvalidOid;
	for (int i = 0; i < INV_MAX_DATABASES; i++)
		if (InvState->workers[i].dbid == dbid)
		{
			if (dropped && InvState->workers[i].pid == 0)
				memset(&InvState->workers[i], 0, sizeof(InvState->workers[i]));
			else
				InvState->workers[i].launch_now = true;
		}
	SpinLockRelease(&InvState->mutex);
	WakeLauncher();
}

/*
 * The database a utility statement needs nobody else connected to, or
 * InvalidOid; *command names the statement.
 */
static Oid
DatabaseNeededAlone(Node *stmt, const char **command)
{
	const char *name = NULL;

	if (IsA(stmt, DropdbStmt))
	{
		name = ((DropdbStmt *) stmt)->dbname;
		*command = "DROP DATABASE";
	}
	else if (IsA(stmt, RenameStmt) && ((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
	{
		name = ((RenameStmt *) stmt)->subname;
		*command = "ALTER DATABASE RENAME";
	}
	else if (IsA(stmt, AlterDatabaseStmt))
	{
		ListCell   *lc;

		foreach(lc, ((AlterDatabaseStmt *) stmt)->options)
			if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
				name = ((AlterDatabaseStmt *) stmt)->dbname;
		*command = "ALTER DATABASE SET TABLESPACE";
	}
	else if (IsA(stmt, AlterDatabaseSetStmt))
	{
		VariableSetStmt *set = ((AlterDatabaseSetStmt *) stmt)->setstmt;

		/* the worker reads it as it connects: it connects again */
		if (set->kind == VAR_RESET_ALL ||
			(set->name != NULL && strcmp(set->name, "inventory.serve_database") == 0))
			name = ((AlterDatabaseSetStmt *) stmt)->dbname;
		*command = "ALTER DATABASE SET inventory.serve_database";
	}
	else if (IsA(stmt, CreatedbStmt))
	{
		ListCell   *lc;

		name = "template1";
		foreach(lc, ((CreatedbStmt *) stmt)->options)
			if (strcmp(((DefElem *) lfirst(lc))->defname, "template") == 0)
				name = defGetString((DefElem *) lfirst(lc));
		*command = "CREATE DATABASE";
	}
	return name != NULL ? get_database_oid(name, true) : InvalidOid;
}

/*
 * The ProcessUtility hook: sets a database aside for the commands that need
 * it alone (see the file header), and registers a database where CREATE
 * EXTENSION inventory has run.
 */
static void
InvProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				  ProcessUtilityContext context, ParamListInfo params,
				  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	const char *command = NULL;
	Oid			alone = DatabaseNeededAlone(stmt, &command);
	volatile int note = OidIsValid(alone) ? SetAside(alone, command) : -1;
	volatile bool done = false;

	PG_TRY();
	{
		if (PrevProcessUtility)
			PrevProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							   queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
									queryEnv, dest, qc);
		done = true;
	}
	PG_FINALLY();
	{
		if (OidIsValid(alone))
			StandBack(note, alone, done && IsA(stmt, DropdbStmt));
	}
	PG_END_TRY();

	if (IsA(stmt, DropdbStmt) && OidIsValid(alone))
		HotForgetDatabase(alone);
	if (IsA(stmt, CreateExtensionStmt) &&
		strcmp(((CreateExtensionStmt *) stmt)->extname, "inventory") == 0)
	{
		Registered = InvalidOid;
		InvServeDatabase();
	}
}

/* Install the hook (from _PG_init, when preloaded). */
void
InvDatabasesInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	PrevProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = InvProcessUtility;
}
