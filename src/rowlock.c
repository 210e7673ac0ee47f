/*
 * rowlock.c
 *	  The advisory lock that queues the writers of one stock row.
 *
 * Every writer of a stock row first takes an exclusive transaction-level
 * advisory lock keyed by a 64-bit hash of (sku, location), so writers wait in
 * the lock manager's queue instead of piling onto the row's tuple lock and
 * re-checking row versions after each commit.  The tag is the one SQL's
 * pg_advisory_xact_lock(bigint) builds, so admins see the queue in pg_locks
 * (classid = high half, objid = low half, objsubid = 1) and can compute a
 * row's key with inventory.lock_key(sku, location).  A hash collision only
 * makes two rows share one queue.
 *
 * Transactions that lock several rows (carts, expiry batches) lock them in
 * ascending key order, so they can never deadlock on each other.
 *
 * Writers of a hot row take the same lock in share mode (InvLockRowShared).
 * No call ever asks for the lock exclusively while it holds it in share mode
 * (two such callers would wait for each other): a call that may need the row
 * exclusively asks for that first, and one whose share lock turns out not to
 * be enough gives it back before asking again (see InvOpen).
 *
 * With inventory.auto_hot on, a writer that has to wait for a row's lock
 * says so first, in a small shared table of the rows whose writers queue
 * (LockWaits): the worker promotes those that queue often (autohot.c).  The
 * table is direct-mapped by lock key; a row that finds its entry taken by
 * another wears the other's count down and takes the entry when it reaches
 * zero, so the rows that queue most keep their entries (the counts are
 * approximate, and only ever tell the worker which rows to look at).  Asking
 * for the lock without waiting first costs nothing when it is free, which is
 * when it is asked for most.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"

#include "inventory.h"

/* Same tag as pg_advisory_xact_lock(bigint); that macro is private to lockfuncs.c. */
#define INV_SET_LOCKTAG_INT64(tag, key64) \
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, \
						 (uint32) ((key64) >> 32), (uint32) (key64), 1)

/* Fixed seed, so keys are stable across backends, restarts and versions. */
#define INV_LOCK_SEED UINT64CONST(0x696e76656e746f72)

/* The 64-bit lock key of a stock row. */
int64
InvRowLockKey(const char *sku, const char *location)
{
	uint64		h;

	h = hash_bytes_extended((const unsigned char *) sku, strlen(sku), INV_LOCK_SEED);
	h = hash_combine64(h, hash_bytes_extended((const unsigned char *) location,
											  strlen(location), INV_LOCK_SEED));
	return (int64) h;
}

/* inventory.auto_hot: count the waits for rows' locks (defined in autohot.c). */
bool		InvAutoHot = false;

/* Entries of the table of rows whose writers wait (a power of two). */
#define LOCK_WAIT_ROWS 256

typedef struct LockWaitEntry
{
	slock_t		mutex;			/* protects the fields below */
	Oid			dbid;
	int64		lock_key;
	int			waits;			/* 0: the entry is free */
	char		sku[INV_MAX_NAME_BYTES + 1];
	char		location[INV_MAX_NAME_BYTES + 1];
} LockWaitEntry;

static LockWaitEntry *LockWaits = NULL;
static shmem_request_hook_type PrevShmemRequest = NULL;
static shmem_startup_hook_type PrevShmemStartup = NULL;

/* Ask for the table's shared memory. */
static void
LockWaitsShmemRequest(void)
{
	if (PrevShmemRequest)
		PrevShmemRequest();
	RequestAddinShmemSpace(MAXALIGN(sizeof(LockWaitEntry) * LOCK_WAIT_ROWS));
}

/* Create or attach to the table; runs again after a crash restart. */
static void
LockWaitsShmemStartup(void)
{
	bool		found;

	if (PrevShmemStartup)
		PrevShmemStartup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	LockWaits = ShmemInitStruct("inventory lock waits",
								sizeof(LockWaitEntry) * LOCK_WAIT_ROWS, &found);
	if (!found)
		for (int i = 0; i < LOCK_WAIT_ROWS; i++)
		{
			memset(&LockWaits[i], 0, sizeof(LockWaitEntry));
			SpinLockInit(&LockWaits[i].mutex);
		}
	LWLockRelease(AddinShmemInitLock);
}

/* Install the shared-memory hooks of the table (from _PG_init). */
void
InvRowLockInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	PrevShmemRequest = shmem_request_hook;
	shmem_request_hook = LockWaitsShmemRequest;
	PrevShmemStartup = shmem_startup_hook;
	shmem_startup_hook = LockWaitsShmemStartup;
}

/* A writer of this database's row is about to wait for the row's lock. */
static void
NoteWait(const char *sku, const char *location, int64 key)
{
	LockWaitEntry *entry = &LockWaits[hash_combine64((uint64) key, MyDatabaseId) %
									  LOCK_WAIT_ROWS];

	SpinLockAcquire(&entry->mutex);
	if (entry->waits > 0 && entry->dbid == MyDatabaseId && entry->lock_key == key)
		entry->waits++;
	else if (entry->waits > 0)
		entry->waits--;
	else
	{
		entry->dbid = MyDatabaseId;
		entry->lock_key = key;
		entry->waits = 1;
		strlcpy(entry->sku, sku, sizeof(entry->sku));
		strlcpy(entry->location, location, sizeof(entry->location));
	}
	SpinLockRelease(&entry->mutex);
}

/*
 * The rows of this database whose writers waited at least min_waits times
 * since the last call, most first at most max; every count of this
 * database starts again from zero (other databases' workers take theirs).
 * Returns how many.
 */
int
InvTakeLockWaits(int min_waits, InvRowTally *rows, int max)
{
	int			n = 0;

	for (int i = 0; i < LOCK_WAIT_ROWS; i++)
	{
		LockWaitEntry *entry = &LockWaits[i];
		InvRowTally row;
		bool		taken = false;

		SpinLockAcquire(&entry->mutex);
		if (entry->dbid == MyDatabaseId)
		{
			if (entry->waits >= min_waits)
			{
				row.count = entry->waits;
				memcpy(row.sku, entry->sku, sizeof(row.sku));
				memcpy(row.location, entry->location, sizeof(row.location));
				taken = true;
			}
			entry->waits = 0;
		}
		SpinLockRelease(&entry->mutex);

		/* keep the max rows with the most waits, in that order */
		if (taken && (n < max || row.count > rows[n - 1].count))
		{
			int			at = n < max ? n++ : n - 1;

			while (at > 0 && rows[at - 1].count < row.count)
			{
				rows[at] = rows[at - 1];
				at--;
			}
			rows[at] = row;
		}
	}
	return n;
}

/*
 * Take the row's lock in a mode for the rest of the transaction.  An
 * exclusive request that has to wait is counted first (see the header).
 */
static bool
LockRow(const char *sku, const char *location, LOCKMODE mode, bool nowait)
{
	LOCKTAG		tag;
	int64		key = InvRowLockKey(sku, location);

	INV_SET_LOCKTAG_INT64(tag, key);
	if (InvAutoHot && !nowait && mode == ExclusiveLock && LockWaits != NULL)
	{
		if (LockAcquire(&tag, mode, false, true) != LOCKACQUIRE_NOT_AVAIL)
			return true;
		NoteWait(sku, location, key);
	}
	return LockAcquire(&tag, mode, false, nowait) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * Take the row's lock exclusively for the rest of the transaction.  With
 * nowait, returns false at once when another transaction holds it.
 */
bool
InvLockRow(const char *sku, const char *location, bool nowait)
{
	return LockRow(sku, location, ExclusiveLock, nowait);
}

/*
 * Take the row's lock in share mode for the rest of the transaction: what a
 * hot-row writer holds, so that writers of one hot row never wait for each
 * other, while cold writers, set_hot and the loading of the counter (which
 * take it exclusively) wait for all of them, in the lock manager, where
 * deadlocks are detected and a wait can be cancelled.
 */
bool
InvLockRowShared(const char *sku, const char *location, bool nowait)
{
	return LockRow(sku, location, ShareLock, nowait);
}

/*
 * Give back one acquisition of the row's lock (exclusive, or share with
 * shared) before the transaction ends; a lock taken more often stays held.
 */
void
InvUnlockRow(const char *sku, const char *location, bool shared)
{
	LOCKTAG		tag;
	int64		key = InvRowLockKey(sku, location);

	INV_SET_LOCKTAG_INT64(tag, key);
	LockRelease(&tag, shared ? ShareLock : ExclusiveLock, false);
}

/* Order rows by lock key, then by name: the canonical locking order. */
int
InvRowOrder(const InvRowRef *a, const InvRowRef *b)
{
	int			c;

	if (a->lock_key != b->lock_key)
		return a->lock_key < b->lock_key ? -1 : 1;
	c = strcmp(a->sku, b->sku);
	return c != 0 ? c : strcmp(a->location, b->location);
}

/* InvRowOrder for qsort. */
static int
CompareRowRefs(const void *a, const void *b)
{
	return InvRowOrder((const InvRowRef *) a, (const InvRowRef *) b);
}

/*
 * Run a query returning (sku, location) rows and return them in canonical
 * locking order; *n gets how many.
 */
InvRowRef *
InvRowsInLockOrder(InvQuery *query, int *n)
{
	InvRowRef  *rows;

	InvRun(query, NULL, NULL, 0);
	*n = (int) SPI_processed;
	rows = palloc(sizeof(InvRowRef) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		rows[i].sku = InvResultText(i, 1);
		rows[i].location = InvResultText(i, 2);
		rows[i].lock_key = InvRowLockKey(rows[i].sku, rows[i].location);
	}
	qsort(rows, *n, sizeof(InvRowRef), CompareRowRefs);
	return rows;
}

PG_FUNCTION_INFO_V1(lock_key);

/* inventory.lock_key(sku, location): the row's advisory lock key. */
Datum
lock_key(PG_FUNCTION_ARGS)
{
	char	   *sku = InvArgName(fcinfo, 0, "sku");
	char	   *location = InvArgName(fcinfo, 1, "location");

	PG_RETURN_INT64(InvRowLockKey(sku, location));
}
