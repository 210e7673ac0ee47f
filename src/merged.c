/*
 * merged.c
 *	  Merged mode: group commit of hot-row deductions made outside a
 *	  transaction block, by the "inventory committer" background worker.
 *
 * A hot deduct in its own transaction still pays one durable commit per
 * call, and on a small machine that, not the row lock, is the ceiling.  In
 * merged mode the callers' deductions share commits:
 *
 *	 1. A caller puts its request (row, quantity, key) in its slot of a shared
 *		queue, sets the committer's latch, and sleeps on its own latch.
 *	 2. The committer takes every queued request, also those that arrive while
 *		it works (up to inventory.merged_max_batch), and applies each exactly
 *		as the transactional hot path would (escrow counter, key, ledger and
 *		queue rows) in one transaction, which it commits durably.
 *	 3. Its commit callback publishes each caller's outcome and wakes the
 *		callers (they pass the wake-up on to each other).  If the transaction
 *		aborts instead, the callers are told to fall back: each then runs its
 *		deduct on the transactional hot path.
 *	 4. A caller whose deduction was applied waits, in its own backend, for
 *		synchronous standbys to confirm the batch's commit record, exactly
 *		as its own commit would have.
 *
 * So no caller ever sees "ok" for a deduction that is not durable, a batch
 * forms only from callers already waiting (the committer starts as soon as a
 * request arrives; whoever arrives during a commit joins the next batch), and
 * every status, ledger row and key is what the transactional path writes.
 * A retry with the same key is safe: the key is recorded in the batch's
 * transaction.
 *
 * Only callers that have written nothing yet in their transaction, outside a
 * transaction block, in the committer's database, use it; and only when
 * inventory.merged_mode is on.  A caller whose request the committer has
 * taken waits for the outcome even if cancelled: the deduction may already
 * be committed, and the cancel takes effect after the call returns.  If the
 * committer is not running, calls take the transactional path.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/syncrep.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "inventory.h"
#include "hot.h"

typedef enum SlotState
{
	SLOT_IDLE,
	SLOT_QUEUED,				/* waiting in the queue */
	SLOT_TAKEN,					/* applied by the committer, not yet committed */
	SLOT_DONE,					/* committed: the outcome is final */
	SLOT_FALLBACK				/* not applied: use the transactional path */
} SlotState;

/* One backend's request, in the slot of its PGPROC number. */
typedef struct MergedSlot
{
	SlotState	state;			/* protected by the queue's mutex */
	int			next;			/* next queued slot, or -1 */
	int			prev;			/* previous queued slot, or -1 */
	Latch	   *latch;
	int64		qty;
	char		sku[INV_MAX_NAME_BYTES + 1];
	char		location[INV_MAX_NAME_BYTES + 1];
	char		key[INV_MAX_NAME_BYTES + 1];
	/* the outcome, written by the committer */
	const char *status;			/* one of the INV_ status literals, or NULL */
	bool		has_available;
	int64		available;
	XLogRecPtr	commit_lsn;		/* where the batch's commit record ends */
	int			wake[2];		/* batch mates this caller wakes, or -1 */
} MergedSlot;

/* One database's queue, served by that database's worker. */
typedef struct MergedQueue
{
	slock_t		mutex;			/* protects the queue and its slots' states */
	int			head;			/* first queued slot, or -1 */
	int			tail;
	Latch	   *committer;		/* the worker's latch while it takes requests */
	Oid			dbid;			/* the database (kept while no worker serves it) */
	int64		batches;		/* statistics */
	int64		requests;
	int64		largest;
} MergedQueue;

/* The queues of the databases, and every backend's slot. */
typedef struct MergedShared
{
	int			nslots;
	MergedQueue queues[INV_MAX_DATABASES];
	MergedSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} MergedShared;

static MergedShared *Shared = NULL;

/* This backend's database's queue (NULL until found), see FindQueue. */
static MergedQueue *Queue = NULL;
static bool MergedMode = true;
static int	MaxBatch = 1000;

/* The committer's current batch, settled when its transaction ends. */
static int *Batch = NULL;
static int	BatchSize = 0;

/* Room for the slots the committer sends away when it exits. */
static int *Away = NULL;

static shmem_request_hook_type PrevShmemRequest = NULL;
static shmem_startup_hook_type PrevShmemStartup = NULL;

/* Shared memory needed for the queues. */
static Size
SharedSize(void)
{
	return add_size(offsetof(MergedShared, slots),
					mul_size(MaxBackends, sizeof(MergedSlot)));
}

/* Ask for the queues' shared memory (PG15: only from this hook). */
static void
MergedShmemRequest(void)
{
	if (PrevShmemRequest)
		PrevShmemRequest();
	RequestAddinShmemSpace(SharedSize());
}

/* Create or attach to the queues; runs again after a crash restart. */
static void
MergedShmemStartup(void)
{
	bool		found;

	if (PrevShmemStartup)
		PrevShmemStartup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Shared = ShmemInitStruct("inventory merged queues", SharedSize(), &found);
	if (!found)
	{
		memset(Shared->queues, 0, sizeof(Shared->queues));
		for (int i = 0; i < INV_MAX_DATABASES; i++)
		{
			SpinLockInit(&Shared->queues[i].mutex);
			Shared->queues[i].head = Shared->queues[i].tail = -1;
		}
		Shared->nslots = MaxBackends;
		for (int i = 0; i < MaxBackends; i++)
			Shared->slots[i].state = SLOT_IDLE;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * This backend's database's queue: the one of its database, while a worker
 * takes requests there (else NULL).  Read without the queue's lock: the
 * caller checks again under it before queueing.
 */
static MergedQueue *
FindQueue(void)
{
	if (Shared == NULL)
		return NULL;
	if (Queue == NULL || Queue->dbid != MyDatabaseId)
	{
		Queue = NULL;
		for (int i = 0; i < INV_MAX_DATABASES && Queue == NULL; i++)
			if (Shared->queues[i].dbid == MyDatabaseId && Shared->queues[i].committer != NULL)
				Queue = &Shared->queues[i];
	}
	return Queue != NULL && Queue->committer != NULL ? Queue : NULL;
}

/*
 * Define the merged-mode settings; when preloading, ask for the queues'
 * shared memory.
 */
void
InvMergedInit(void)
{
	DefineCustomBoolVariable("inventory.merged_mode",
							 "Group-commit hot-row deductions made outside a transaction block.",
							 NULL,
							 &MergedMode,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("inventory.merged_max_batch",
							"Most deductions the committer applies in one transaction.",
							NULL,
							&MaxBatch,
							1000, 1, 100000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;

	PrevShmemRequest = shmem_request_hook;
	shmem_request_hook = MergedShmemRequest;
	PrevShmemStartup = shmem_startup_hook;
	shmem_startup_hook = MergedShmemStartup;
}

/*
 * May this call be merged?  Only when the caller's own transaction could
 * commit the same work right now: outside a transaction block, a read-write
 * transaction that has written nothing yet, in a plain SELECT (not a CALL
 * or DO, whose procedure could roll back after the call), not after other
 * statements of an extended-protocol pipeline's transaction.
 */
bool
InvMergedEligible(void)
{
	return MergedMode && MyProc != NULL && FindQueue() != NULL &&
		MyProc->pgprocno < Shared->nslots &&
		!IsTransactionBlock() && !IsInParallelMode() && !XactReadOnly &&
		GetCurrentTransactionNestLevel() == 1 &&
		!TransactionIdIsValid(GetTopTransactionIdIfAny()) &&
		!(MyXactFlags & XACT_FLAGS_PIPELINING) &&
		ActivePortal != NULL && ActivePortal->commandTag == CMDTAG_SELECT;
}

/* Unlink a queued slot from the queue; the caller holds the mutex. */
static void
Unlink(int index)
{
	MergedSlot *slot = &Shared->slots[index];

	if (slot->prev >= 0)
		Shared->slots[slot->prev].next = slot->next;
	else
		Queue->head = slot->next;
	if (slot->next >= 0)
		Shared->slots[slot->next].prev = slot->prev;
	else
		Queue->tail = slot->prev;
}

/* Take the first queued slot off the queue; the caller holds the mutex. */
static int
PopHead(void)
{
	int			i = Queue->head;

	Unlink(i);
	return i;
}

/*
 * A round's deductions that got their units (their keys are distinct): their
 * keys recorded, their movements journalled, and one queue row per stock row,
 * in one statement.  Returns the keys it recorded; a key recorded meanwhile
 * (by another call, or an earlier round) is skipped.
 */
static InvQuery ApplyMany = {
	"WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) "
	"             AS i(key, sku, location, qty)), "
	"     l AS (INSERT INTO inventory.ledger (op, key, sku, location, on_hand_delta, call) "
	"           SELECT 'deduct', key, sku, location, -qty, 'deduct' FROM i "
	"           ON CONFLICT (key) WHERE call IS NOT NULL DO NOTHING "
	"           RETURNING key, sku, location, -on_hand_delta AS qty), "
	"     p AS (INSERT INTO inventory.pending (sku, location, on_hand_delta) "
	"           SELECT sku, location, -sum(qty) FROM l GROUP BY sku, location) "
	"SELECT key FROM l",
	4, {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID}
};

/* A request of the batch as the committer works on it. */
typedef struct Work
{
	MergedSlot *slot;
	InvTarget	target;
	bool		took;			/* units taken from the counter */
	bool		duplicate;		/* an earlier request of the round has its key */
	uint32		keyhash;		/* to compare keys quickly */
} Work;

/* Settle a request that was not applied: duplicate, insufficient or neither. */
static void
Classify(Work *w)
{
	MergedSlot *slot = w->slot;

	switch (InvKeyClassify(slot->key, "deduct",
						   InvRowArgs(slot->sku, slot->location, "qty", slot->qty)))
	{
		case INV_KEY_DUPLICATE:
			slot->status = INV_DUPLICATE;
			break;
		case INV_KEY_NEW:
			slot->status = INV_INSUFFICIENT;
			break;
		default:
			return;				/* the caller raises the key-reuse error */
	}
	slot->has_available = true;
	slot->available = HotAvailable(w->target.hot);
}

/*
 * Apply requests Batch[from..to) in the committer's transaction, exactly as
 * the transactional hot path would, and fill in their outcomes (status NULL:
 * the caller must use the transactional path).
 */
static void
ApplyBatch(int from, int to)
{
	int			n = to - from;
	Work	   *work = palloc0(sizeof(Work) * n);
	Datum	   *keys = palloc(sizeof(Datum) * n);
	Datum	   *skus = palloc(sizeof(Datum) * n);
	Datum	   *locations = palloc(sizeof(Datum) * n);
	Datum	   *qtys = palloc(sizeof(Datum) * n);
	Datum		values[4];
	int			m = 0;

	for (int i = 0; i < n; i++)
	{
		Work	   *w = &work[i];
		MergedSlot *slot = &Shared->slots[Batch[from + i]];
		int64		available;

		w->slot = slot;
		slot->status = NULL;
		slot->has_available = false;

		/*
		 * A key already taken in this round (a client's retry on another
		 * connection) is not taken again: one statement could not tell the
		 * two apart.  It goes the transactional way, after this commit.
		 */
		w->keyhash = hash_bytes((const unsigned char *) slot->key, strlen(slot->key));
		for (int j = 0; j < i && !w->duplicate; j++)
			w->duplicate = work[j].took && work[j].keyhash == w->keyhash &&
				strcmp(work[j].slot->key, slot->key) == 0;
		if (w->duplicate)
			continue;

		/*
		 * A key archived, or recorded in any state while an archive runs,
		 * goes the transactional way, which looks it up: an archiving
		 * transaction may be deleting its row, and the insertion below
		 * would wait for that and then go through (and abort the batch).
		 */
		if (InvKeyInArchiving(slot->key) || InvKeyArchived(slot->key))
			continue;

		/* rows that stopped being hot meanwhile go the transactional way */
		if (!InvOpen(&w->target, slot->sku, slot->location, INV_NOWAIT))
			continue;
		if (w->target.hot == NULL)
		{
			InvUnlockRow(slot->sku, slot->location, false);
			continue;
		}
		w->took = InvTake(&w->target, slot->qty, &available);
		if (!w->took)
			continue;
		slot->has_available = true;
		slot->available = available;
		keys[m] = CStringGetTextDatum(slot->key);
		skus[m] = CStringGetTextDatum(slot->sku);
		locations[m] = CStringGetTextDatum(slot->location);
		qtys[m] = Int64GetDatum(slot->qty);
		m++;
	}

	if (m > 0)
	{
		values[0] = PointerGetDatum(construct_array(keys, m, TEXTOID, -1, false, TYPALIGN_INT));
		values[1] = PointerGetDatum(construct_array(skus, m, TEXTOID, -1, false, TYPALIGN_INT));
		values[2] = PointerGetDatum(construct_array(locations, m, TEXTOID, -1, false, TYPALIGN_INT));
		values[3] = PointerGetDatum(construct_array(qtys, m, INT8OID, 8, true, TYPALIGN_DOUBLE));
		InvRun(&ApplyMany, values, NULL, 0);
	}

	/*
	 * Mark the requests whose key was recorded (keys in a round are
	 * distinct).  A key archived meanwhile (see InvKeyNotArchived) aborts
	 * the batch: its callers take the transactional path, which answers.
	 */
	for (uint64 r = 0; r < (m > 0 ? SPI_processed : 0); r++)
	{
		char	   *key = InvResultText((int) r, 1);

		if (InvKeyArchived(key))
			elog(ERROR, "inventory committer: key \"%s\" was archived while the batch recorded it", key);

		for (int i = 0; i < n; i++)
			if (work[i].took && work[i].slot->status == NULL &&
				strcmp(work[i].slot->key, key) == 0)
			{
				work[i].slot->status = INV_OK;
				InvNotifyLevel(work[i].slot->sku, work[i].slot->location,
							   work[i].slot->available + work[i].slot->qty,
							   work[i].slot->available);
				break;
			}
	}
	for (int i = 0; i < n; i++)
	{
		Work	   *w = &work[i];

		if (w->slot->status != NULL || w->target.hot == NULL)
			continue;
		if (w->took)
			HotUntake(w->target.hot, w->slot->qty);
		w->slot->has_available = false;
		Classify(w);
	}
}

/*
 * Deduct in merged mode.  Returns true with *out filled in, or false if the
 * caller must run the deduct on the transactional path.
 */
bool
InvMergedDeduct(const char *sku, const char *location, int64 qty,
				const char *key, InvOutcome *out)
{
	int			me = MyProc->pgprocno;
	MergedSlot *slot = &Shared->slots[me];
	Latch	   *committer;
	SlotState	state;
	int			wake[2] = {-1, -1};

	slot->latch = MyLatch;
	slot->qty = qty;
	strlcpy(slot->sku, sku, sizeof(slot->sku));
	strlcpy(slot->location, location, sizeof(slot->location));
	strlcpy(slot->key, key, sizeof(slot->key));
	slot->next = -1;
	slot->prev = -1;
	slot->wake[0] = slot->wake[1] = -1;

	SpinLockAcquire(&Queue->mutex);
	committer = Queue->committer;
	if (committer != NULL)
	{
		slot->state = SLOT_QUEUED;
		slot->prev = Queue->tail;
		if (Queue->tail >= 0)
			Shared->slots[Queue->tail].next = me;
		else
			Queue->head = me;
		Queue->tail = me;
	}
	SpinLockRelease(&Queue->mutex);
	if (committer == NULL)
		return false;
	SetLatch(committer);

	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);

		SpinLockAcquire(&Queue->mutex);
		state = slot->state;
		if (state == SLOT_QUEUED && (InterruptPending || Queue->committer == NULL))
		{
			/* not taken yet: leave the queue (to act on the interrupt) */
			Unlink(me);
			state = SLOT_FALLBACK;
		}
		if (state == SLOT_DONE || state == SLOT_FALLBACK)
		{
			slot->state = SLOT_IDLE;
			memcpy(wake, slot->wake, sizeof(wake));
		}
		SpinLockRelease(&Queue->mutex);

		/* pass the wake-up on first: batch mates wait for it */
		for (int i = 0; i < 2; i++)
			if (wake[i] >= 0)
				SetLatch(Shared->slots[wake[i]].latch);

		if (state == SLOT_DONE)
		{
			/*
			 * The deduction is committed: so is, as far as the client can
			 * tell, the statement that asked for it.  In a pipeline the
			 * server ends the transaction right after it (as for VACUUM),
			 * so a later error of the pipeline cannot seem to undo it.
			 */
			MyXactFlags |= XACT_FLAGS_NEEDIMMEDIATECOMMIT;
			InvSetOutcome(out, slot->status, sku, location);
			out->has_available = slot->has_available;
			out->available = slot->available;

			/*
			 * The batch is flushed locally; wait for synchronous standbys
			 * as this backend's own commit would (its synchronous_commit
			 * and synchronous_standby_names), with PostgreSQL's own
			 * behaviour when cancelled (a warning) or terminated (no
			 * answer at all), whatever happens to the committer.
			 */
			if (strcmp(out->status, INV_OK) == 0)
			{
				HOLD_INTERRUPTS();
				SyncRepWaitForLSN(slot->commit_lsn, true);
				RESUME_INTERRUPTS();
			}
			return true;
		}
		if (state == SLOT_FALLBACK)
		{
			CHECK_FOR_INTERRUPTS();
			return false;
		}
	}
}

/*
 * When the committer's transaction ends: publish the batch's outcomes
 * (commit, after making sure the commit is flushed) or send its callers to
 * the transactional path (abort).  The callers wake each other as a binary
 * tree: the committer sets the first one's latch, and the caller at batch
 * position p wakes those at 2p + 1 and 2p + 2 as soon as it is up, so the
 * committer makes one wake-up call per batch, not one per caller.  A caller
 * that died before passing it on only delays its subtree: each caller also
 * looks at its slot every second.
 */
static void
MergedXactCallback(XactEvent event, void *arg)
{
	bool		commit;
	Latch	   *first = NULL;

	if (BatchSize == 0)
		return;
	if (event == XACT_EVENT_COMMIT)
		commit = true;
	else if (event == XACT_EVENT_ABORT)
		commit = false;
	else
		return;

	if (commit)
		XLogFlush(XactLastCommitEnd);	/* durable here; standbys: callers wait */
	/* children before parents: a caller up early finds its children final */
	for (int i = BatchSize - 1; i >= 0; i--)
	{
		MergedSlot *slot = &Shared->slots[Batch[i]];

		SpinLockAcquire(&Queue->mutex);
		slot->state = (commit && slot->status != NULL) ? SLOT_DONE : SLOT_FALLBACK;
		slot->commit_lsn = XactLastCommitEnd;
		slot->wake[0] = 2 * i + 1 < BatchSize ? Batch[2 * i + 1] : -1;
		slot->wake[1] = 2 * i + 2 < BatchSize ? Batch[2 * i + 2] : -1;
		first = slot->latch;
		SpinLockRelease(&Queue->mutex);
	}
	SetLatch(first);
	BatchSize = 0;
}

/* Register the transaction callback (once per process, from _PG_init). */
void
InvMergedCallbacks(void)
{
	RegisterXactCallback(MergedXactCallback, NULL);
}

/* Merged-mode statistics of this database: batches, requests, largest batch. */
void
InvMergedStats(int64 *batches, int64 *requests, int64 *largest)
{
	*batches = *requests = *largest = 0;
	if (Shared == NULL)
		return;
	for (int i = 0; i < INV_MAX_DATABASES; i++)
	{
		MergedQueue *q = &Shared->queues[i];

		SpinLockAcquire(&q->mutex);
		if (q->dbid == MyDatabaseId)
		{
			*batches = q->batches;
			*requests = q->requests;
			*largest = q->largest;
		}
		SpinLockRelease(&q->mutex);
	}
}

/* Take queued requests into the batch, up to room; returns how many. */
static int
TakeQueued(int room)
{
	int			n = 0;

	SpinLockAcquire(&Queue->mutex);
	while (Queue->head >= 0 && n < room)
	{
		int			i = PopHead();

		Shared->slots[i].state = SLOT_TAKEN;
		Batch[BatchSize + n++] = i;
	}
	SpinLockRelease(&Queue->mutex);
	return n;
}

/*
 * Apply and commit one batch; the callback publishes the outcomes.
 *
 * Every batch is flushed to the local WAL before it commits, whatever the
 * server's default, but the worker does not wait for synchronous standbys
 * (it commits with synchronous_commit = local, see InvWorkerStart):
 * each caller waits for its batch's commit record itself (see
 * InvMergedDeduct), so that a worker cancelled or terminated during that
 * wait can never make a caller answer "ok" early, and the next batch need
 * not wait for the standbys.  No batch waits long for a lock: a key being
 * inserted by an open transaction would hold up every caller of the batch,
 * who cannot be cancelled while it runs.  On the timeout the batch aborts
 * and its callers take the transactional path, where they wait cancellably.
 */
static void
CommitBatch(void)
{
	int			n;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) set_config_option("lock_timeout", "1s", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	while (BatchSize < MaxBatch && (n = TakeQueued(MaxBatch - BatchSize)) > 0)
	{
		/* counted before applying: an error must reach these callers too */
		BatchSize += n;
		ApplyBatch(BatchSize - n, BatchSize);
	}
	SpinLockAcquire(&Queue->mutex);
	Queue->batches++;
	Queue->requests += BatchSize;
	Queue->largest = Max(Queue->largest, BatchSize);
	SpinLockRelease(&Queue->mutex);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Stop taking requests: later callers take the transactional path, and
 * those already queued are sent there too (woken).
 */
static void
StopTaking(void)
{
	int			n = 0;

	SpinLockAcquire(&Queue->mutex);
	Queue->committer = NULL;
	while (Queue->head >= 0)
	{
		int			i = PopHead();

		Shared->slots[i].state = SLOT_FALLBACK;
		Away[n++] = i;
	}
	SpinLockRelease(&Queue->mutex);
	/* no system call under a spinlock: wake them now */
	for (int i = 0; i < n; i++)
		SetLatch(Shared->slots[Away[i]].latch);
}

/* At exit: stop taking requests. */
static void
ServeExit(int code, Datum arg)
{
	StopTaking();
}

/*
 * The database's worker takes this database's merged-mode requests from
 * now on, in queue index (its slot of worker_status()).
 */
void
InvMergedServe(int index)
{
	Batch = MemoryContextAlloc(TopMemoryContext, sizeof(int) * Shared->nslots);
	Away = MemoryContextAlloc(TopMemoryContext, sizeof(int) * Shared->nslots);
	Queue = &Shared->queues[index];
	before_shmem_exit(ServeExit, (Datum) 0);
	SpinLockAcquire(&Queue->mutex);
	if (Queue->dbid != MyDatabaseId)
	{
		Queue->dbid = MyDatabaseId;
		Queue->batches = Queue->requests = Queue->largest = 0;
	}
	Queue->committer = MyLatch;
	SpinLockRelease(&Queue->mutex);
}

/* Is a request queued for the worker? */
bool
InvMergedQueued(void)
{
	bool		queued;

	SpinLockAcquire(&Queue->mutex);
	queued = Queue->head >= 0;
	SpinLockRelease(&Queue->mutex);
	return queued;
}

/*
 * Commit the queued requests, a batch at a time.  A batch that fails is
 * logged and rolled back, and its callers take the transactional path.
 */
void
InvMergedCommit(void)
{
	while (InvMergedQueued())
	{
		MemoryContext cxt = CurrentMemoryContext;

		PG_TRY();
		{
			CommitBatch();
		}
		PG_CATCH();
		{
			ErrorData  *edata;
			bool		lock_wait;

			/* the abort callback sends the batch's callers away */
			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			lock_wait = edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
			FreeErrorData(edata);
			if (!lock_wait)
				EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();

			/* a lock wait given up is expected: say so plainly */
			if (lock_wait)
				ereport(LOG,
						(errmsg("inventory worker: a merged-mode batch gave up waiting for a lock after lock_timeout; its callers take the transactional path")));
		}
		PG_END_TRY();
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * While the worker runs a pass that may be long (expiry and archiving, the
 * automatic rule, the launcher's), merged mode pauses: requests already
 * queued are committed first, later callers take the transactional path
 * until InvMergedResume.  Callers wait through a merge pass.
 */
void
InvMergedPause(void)
{
	SpinLockAcquire(&Queue->mutex);
	Queue->committer = NULL;
	SpinLockRelease(&Queue->mutex);
	InvMergedCommit();
}

/* Take requests again after a pass. */
void
InvMergedResume(void)
{
	SpinLockAcquire(&Queue->mutex);
	Queue->committer = MyLatch;
	SpinLockRelease(&Queue->mutex);
}
