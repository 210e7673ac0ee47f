/*
 * shmem.c
 *	  Shared memory: the table of hot rows and the worker's status.
 *
 * Hot rows' counters live in inventory.hot_rows slots (a PGC_POSTMASTER
 * setting), found by (database, sku, location) through a fixed-size shared
 * hash.  A slot is taken when a row is made hot or first used hot, and freed
 * when it is made cold again (or reclaimed when it holds nothing), so it
 * serves one row after another; its generation says which (hot.c).  The hash
 * and the list of free slots are protected by one LWLock of the "inventory"
 * tranche; each slot's fields by its spinlock, initialised once.
 *
 * Shared memory is only a cache of what the tables say: after a restart (or a
 * crash, which reinitialises it) every counter is rebuilt from the tables on
 * first use.
 *
 * Space is requested in shmem_request_hook, as PostgreSQL 15 requires, so
 * the library must be in shared_preload_libraries; every SQL function checks
 * that first (InvCheckReady) rather than crashing on a missing table.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "tcop/utility.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/hsearch.h"

#include "inventory.h"
#include "hot.h"

int			InvHotRows = 1000;

InvShared  *InvState = NULL;
HTAB	   *InvHotTable = NULL;
HotEntry   *InvHotSlots = NULL;
int		   *InvHotFree = NULL;

static bool Preloaded = false;
static shmem_request_hook_type PrevShmemRequest = NULL;
static shmem_startup_hook_type PrevShmemStartup = NULL;

/* Ask for our shared memory and LWLock (PG15: only from this hook). */
static void
InvShmemRequest(void)
{
	if (PrevShmemRequest)
		PrevShmemRequest();
	RequestAddinShmemSpace(MAXALIGN(sizeof(InvShared)));
	RequestAddinShmemSpace(MAXALIGN(mul_size(InvHotRows, sizeof(HotEntry))));
	RequestAddinShmemSpace(MAXALIGN(mul_size(InvHotRows, sizeof(int))));
	RequestAddinShmemSpace(hash_estimate_size(InvHotRows, sizeof(HotMapEntry)));
	RequestNamedLWLockTranche("inventory", 1);
}

/* Create or attach to the shared state; runs again after a crash restart. */
static void
InvShmemStartup(void)
{
	bool		found;
	HASHCTL		info;

	if (PrevShmemStartup)
		PrevShmemStartup();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	InvState = ShmemInitStruct("inventory state", sizeof(InvShared), &found);
	if (!found)
	{
		memset(InvState, 0, sizeof(InvShared));
		InvState->lock = &(GetNamedLWLockTranche("inventory"))->lock;
		for (int i = 0; i < INV_HOT_BITS / 64; i++)
			pg_atomic_init_u64(&InvState->hot_bits[i], 0);
		for (int d = 0; d < INV_MAX_DATABASES; d++)
			for (int c = 0; c < INV_STATS_CALLS; c++)
				for (int s = 0; s < INV_STATS_STATUSES; s++)
					pg_atomic_init_u64(&InvState->counts[d][c][s], 0);
		pg_atomic_init_u32(&InvState->archiving, 0);
		SpinLockInit(&InvState->mutex);
	}
	InvHotSlots = ShmemInitStruct("inventory hot slots",
								  mul_size(InvHotRows, sizeof(HotEntry)), &found);
	InvHotFree = ShmemInitStruct("inventory free hot slots",
								 mul_size(InvHotRows, sizeof(int)), &found);
	if (!found)
	{
		/* every slot free; its spinlock initialised once, for good */
		for (int i = 0; i < InvHotRows; i++)
		{
			memset(&InvHotSlots[i], 0, sizeof(HotEntry));
			SpinLockInit(&InvHotSlots[i].mutex);
			InvHotFree[i] = InvHotRows - 1 - i;
		}
		InvState->nfree = InvHotRows;
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(HotKey);
	info.entrysize = sizeof(HotMapEntry);
	InvHotTable = ShmemInitHash("inventory hot rows", InvHotRows, InvHotRows,
								&info, HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);
}

/* Define inventory.hot_rows and install the hooks (from _PG_init). */
void
InvShmemInit(void)
{
	/* PGC_POSTMASTER settings can only be defined at server start */
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("inventory.hot_rows",
							"Maximum number of hot rows (shared-memory escrow counters).",
							NULL,
							&InvHotRows,
							1000, 1, 1000000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	Preloaded = true;
	PrevShmemRequest = shmem_request_hook;
	shmem_request_hook = InvShmemRequest;
	PrevShmemStartup = shmem_startup_hook;
	shmem_startup_hook = InvShmemStartup;
}

/* Every SQL entry point calls this first. */
void
InvCheckPreloaded(void)
{
	if (!Preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("inventory must be loaded via shared_preload_libraries"),
				 errhint("Add inventory to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * What every SQL entry point that reads or writes the tables calls first:
 * the library must be preloaded, and the database's tables of its version;
 * a call that writes (named call, NULL for one that only reads) is refused
 * in a read-only transaction (also on a hot standby) before it does
 * anything, as PostgreSQL refuses a write.
 */
void
InvCheckReady(const char *call)
{
	InvCheckPreloaded();
	if (call != NULL)
		PreventCommandIfReadOnly(call);
	InvServeDatabase();
	if (!InvSchemaIsCurrent())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the inventory extension in this database is older than the loaded library"),
				 errdetail("The library serves versions 1.1 and 1.2 of the extension's tables."),
				 errhint("Run ALTER EXTENSION inventory UPDATE in this database.")));
}
