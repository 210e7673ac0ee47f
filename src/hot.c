/*
 * hot.c
 *	  Escrow counters for hot rows, and the transaction callbacks that keep
 *	  them exact.
 *
 * A best-selling SKU must not serialise every buyer on one row lock held
 * until commit.  For a hot row the number of units that may still be taken
 * lives in shared memory (HotEntry.available).  A deduct or reserve takes its
 * units from that counter under a spinlock, then writes its ledger row and a
 * queue row (inventory.pending) in the caller's transaction; it never touches
 * the stock row and takes no row lock, so buyers of one SKU run in parallel.
 * The worker later merges queued movements into the stock row (merge.c).
 *
 * The counter is kept conservative, so it can never promise a unit the tables
 * do not have:
 *	 - units taken leave the counter at once, and come back if the taking
 *	   (sub)transaction aborts;
 *	 - units that arrive (restock, release, expiry, refund, a stocktake up)
 *	   are added only when their transaction commits.
 * Units a transaction has arranged to arrive can be taken by that same
 * transaction before it commits (e.g. a deduct that first expires overdue
 * holds of the row), since they share its fate.
 *
 * Each backend keeps one record per (entry, subtransaction level) it used:
 * units taken from the counter and units due to arrive.  The records are
 * settled by the callbacks: commit adds the arrivals, abort returns the
 * takes, a subtransaction commit folds its records into its parent's, a
 * subtransaction abort returns its takes.  Nothing in a callback can fail.
 * PREPARE TRANSACTION is refused for a transaction with records, since
 * shared memory does not survive to COMMIT PREPARED.
 *
 * A counter is loaded from the tables on first use ("loaded"), under the
 * row's advisory lock held exclusively, so while nobody is using it (its
 * users hold that lock in share mode), and is exact from then on.
 * HotUnload (set_hot(false)) clears "loaded" under the same exclusive lock.
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "inventory.h"
#include "hot.h"

/* What one (sub)transaction did to one counter. */
typedef struct HotUse
{
	HotEntry   *entry;
	int			level;			/* transaction nest level */
	int64		taken;			/* units taken from the counter */
	int64		arriving;		/* units to add to the counter at commit */
	TimestampTz expiry;			/* earliest expiry of the holds it made */
} HotUse;

static HotUse *Uses = NULL;
static int	NumUses = 0;
static int	MaxUses = 0;

static HotUse *FindUse(HotEntry *entry, int level);

/* Backend-local map from row to its slot, as last seen (see HotFind). */
static HTAB *LocalEntries = NULL;

typedef struct LocalEntry
{
	HotKey		key;
	HotEntry   *entry;
	uint64		generation;		/* the slot's generation when it was the row's */
} LocalEntry;

/* Fill a zero-padded key for this database's row. */
static void
MakeKey(HotKey *key, const char *sku, const char *location)
{
	memset(key, 0, sizeof(HotKey));
	key->dbid = MyDatabaseId;
	strlcpy(key->sku, sku, sizeof(key->sku));
	strlcpy(key->location, location, sizeof(key->location));
}

/* The filter bit of a row of this database. */
static uint64
RowBit(const char *sku, const char *location)
{
	return hash_combine64((uint64) InvRowLockKey(sku, location), MyDatabaseId) %
		INV_HOT_BITS;
}

/* Is the slot still the row's, of that generation?  (Any backend, any time.) */
static bool
SlotIs(HotEntry *entry, uint64 generation)
{
	bool		same;

	SpinLockAcquire(&entry->mutex);
	same = entry->generation == generation;
	SpinLockRelease(&entry->mutex);
	return same;
}

/*
 * Free the slots nobody uses that hold nothing a call needs (dropped
 * InvalidOid): not loaded, or loaded from an inventory.stock of this
 * database that is no longer there (relid is the one there now); or, given
 * a database that was dropped, every slot of it.  The caller holds
 * InvState->lock exclusively.  Returns how many.
 */
static int
FreeSlots(Oid dropped, Oid relid)
{
	int			freed = 0;

	for (int i = 0; i < InvHotRows; i++)
	{
		HotEntry   *entry = &InvHotSlots[i];
		bool		take_back;
		HotKey		key;

		SpinLockAcquire(&entry->mutex);
		take_back = entry->generation != 0 && entry->uses == 0 &&
			(OidIsValid(dropped) ? entry->key.dbid == dropped :
			 (!entry->loaded ||
			  (entry->key.dbid == MyDatabaseId && entry->stock_relid != relid)));
		if (take_back)
		{
			key = entry->key;
			entry->generation = 0;
			entry->loaded = false;
		}
		SpinLockRelease(&entry->mutex);
		if (take_back)
		{
			hash_search(InvHotTable, &key, HASH_REMOVE, NULL);
			InvHotFree[InvState->nfree++] = i;
			freed++;
		}
	}
	return freed;
}

/*
 * Free every slot of a database that was dropped (from DROP DATABASE, once
 * it succeeded): nobody can use them any more, and FreeSlots cannot tell
 * another database's slots from live ones, so they would stay taken until
 * the server restarts.
 */
void
HotForgetDatabase(Oid dbid)
{
	if (InvHotSlots == NULL)
		return;
	LWLockAcquire(InvState->lock, LW_EXCLUSIVE);
	(void) FreeSlots(dbid, InvalidOid);
	LWLockRelease(InvState->lock);
}

/*
 * The slot of a row, or NULL if it has none; *generation gets the slot's
 * generation, which later calls check (the slot may be freed and given to
 * another row meanwhile).  With create, gives the row a free slot (not
 * loaded), reclaiming slots that hold nothing if none is free, or fails
 * when all inventory.hot_rows slots are taken.
 */
HotEntry *
HotFind(const char *sku, const char *location, bool create, uint64 *generation)
{
	HotKey		key;
	LocalEntry *local;
	HotMapEntry *map;
	HotEntry   *entry = NULL;
	bool		found;
	Oid			relid;

	if (LocalEntries == NULL)
	{
		HASHCTL		info;

		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(HotKey);
		info.entrysize = sizeof(LocalEntry);
		info.hcxt = TopMemoryContext;
		LocalEntries = hash_create("inventory local hot rows", 64, &info,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	MakeKey(&key, sku, location);
	local = hash_search(LocalEntries, &key, HASH_FIND, NULL);
	if (local)
	{
		if (SlotIs(local->entry, local->generation))
		{
			*generation = local->generation;
			return local->entry;
		}
		hash_search(LocalEntries, &key, HASH_REMOVE, NULL);
	}

	relid = InvStockRelid();	/* no catalog lookup under the lock */
	LWLockAcquire(InvState->lock, create ? LW_EXCLUSIVE : LW_SHARED);
	map = hash_search(InvHotTable, &key, HASH_FIND, NULL);
	if (map != NULL)
		entry = &InvHotSlots[map->slot];
	else if (create)
	{
		int			slot;

		if (InvState->nfree == 0 && FreeSlots(InvalidOid, relid) == 0)
		{
			LWLockRelease(InvState->lock);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("too many hot rows"),
					 errdetail("All %d slots of inventory.hot_rows hold a loaded counter.",
							   InvHotRows),
					 errhint("Make a hot row ordinary with set_hot(sku, false), or raise inventory.hot_rows and restart the server.")));
		}
		slot = InvHotFree[--InvState->nfree];
		map = hash_search(InvHotTable, &key, HASH_ENTER, &found);
		map->slot = slot;
		entry = &InvHotSlots[slot];
		{
			uint64		bit = RowBit(sku, location);

			pg_atomic_fetch_or_u64(&InvState->hot_bits[bit / 64], UINT64CONST(1) << (bit % 64));
		}
		SpinLockAcquire(&entry->mutex);
		entry->generation = ++InvState->generation;
		entry->key = key;
		entry->loaded = false;
		entry->stock_relid = relid;
		entry->available = 0;
		entry->uses = 0;
		entry->changes = 0;
		entry->next_expiry = DT_NOEND;
		entry->expiry_notes = 0;
		entry->takes = 0;
		entry->refusals = 0;
		SpinLockRelease(&entry->mutex);
	}
	if (entry)
	{
		/* the lock keeps the slot the row's while we read its generation */
		SpinLockAcquire(&entry->mutex);
		*generation = entry->generation;
		SpinLockRelease(&entry->mutex);
	}
	LWLockRelease(InvState->lock);

	if (entry)
	{
		local = hash_search(LocalEntries, &key, HASH_ENTER, &found);
		local->entry = entry;
		local->generation = *generation;
	}
	return entry;
}

/*
 * May the row be hot (its counter loaded)?  A row that never had a slot
 * since the server started has its bit clear in the shared filter, read
 * without a lock: then no, at once.  Otherwise the slot is looked up.  The
 * answer "no" can be stale by the time it is used (the row made hot just
 * now): callers use this only to choose the everyday way, which checks the
 * stock row's own "hot" flag as it writes, so it can only ever cost time.
 */
bool
HotMaybeLoaded(const char *sku, const char *location)
{
	uint64		bit = RowBit(sku, location);
	HotEntry   *entry;
	uint64		generation;

	if ((pg_atomic_read_u64(&InvState->hot_bits[bit / 64]) & (UINT64CONST(1) << (bit % 64))) == 0)
		return false;
	entry = HotFind(sku, location, false, &generation);
	return entry != NULL && HotPeek(entry, generation, NULL, NULL);
}

/*
 * A look at a row's counter without using it (no lock of the row, nothing
 * registered): is it loaded from the current inventory.stock, and if so how
 * many units are available (to this transaction, as HotAvailable counts
 * them) and may a hold of the row be due (either out argument may be NULL)?
 * False if the slot is no longer the row's.
 */
bool
HotPeek(HotEntry *entry, uint64 generation, int64 *available, bool *expiry_due)
{
	Oid			relid = InvStockRelid();
	TimestampTz now = GetCurrentStatementStartTimestamp();
	bool		loaded;

	HotUse	   *use;

	SpinLockAcquire(&entry->mutex);
	loaded = entry->generation == generation && entry->loaded &&
		entry->stock_relid == relid;
	if (available)
		*available = entry->available;
	if (expiry_due)
		*expiry_due = entry->next_expiry <= now;
	SpinLockRelease(&entry->mutex);
	/* units this transaction arranged to arrive count for it (HotAvailable) */
	if (loaded && available && (use = FindUse(entry, GetCurrentTransactionNestLevel())) != NULL)
		*available += use->arriving;
	return loaded;
}

/* This backend's record for an entry at a level, or NULL. */
static HotUse *
FindUse(HotEntry *entry, int level)
{
	for (int i = 0; i < NumUses; i++)
		if (Uses[i].entry == entry && (level < 0 || Uses[i].level == level))
			return &Uses[i];
	return NULL;
}

/*
 * Start using a row's counter in the current (sub)transaction.  Returns
 * false if the slot is no longer the row's, or its counter is not loaded
 * (from the current inventory.stock) and this transaction has not used it
 * yet: the caller takes the cold path.  A slot in use is never freed.
 */
bool
HotBegin(HotEntry *entry, uint64 generation)
{
	int			level = GetCurrentTransactionNestLevel();
	Oid			relid = InvStockRelid();
	bool		ok = true;

	if (FindUse(entry, level))
		return true;
	if (NumUses >= MaxUses)
	{
		MaxUses = Max(16, MaxUses * 2);
		Uses = Uses ? repalloc(Uses, sizeof(HotUse) * MaxUses)
			: MemoryContextAlloc(TopMemoryContext, sizeof(HotUse) * MaxUses);
	}
	SpinLockAcquire(&entry->mutex);
	if (entry->generation == generation && entry->loaded && entry->stock_relid == relid)
		entry->uses++;
	else
		ok = false;
	SpinLockRelease(&entry->mutex);
	if (!ok)
		return false;

	Uses[NumUses].entry = entry;
	Uses[NumUses].level = level;
	Uses[NumUses].taken = 0;
	Uses[NumUses].arriving = 0;
	Uses[NumUses].expiry = DT_NOEND;
	NumUses++;
	return true;
}

/* The current level's record of an entry, which HotBegin made. */
static HotUse *
CurrentUse(HotEntry *entry)
{
	HotUse	   *use = FindUse(entry, GetCurrentTransactionNestLevel());

	if (use == NULL)
		elog(ERROR, "inventory: hot row used without HotBegin");
	return use;
}

/*
 * Set a counter from the tables; the caller holds the row's advisory lock
 * exclusively.  False if the slot is no longer the row's (it was reclaimed
 * before it was loaded): the caller looks it up again.  A counter loaded for
 * a new inventory.stock starts new statistics.
 */
bool
HotLoad(HotEntry *entry, uint64 generation, int64 available, TimestampTz next_expiry)
{
	Oid			relid = InvStockRelid();
	bool		same;

	SpinLockAcquire(&entry->mutex);
	same = entry->generation == generation;
	if (same)
	{
		if (entry->stock_relid != relid)
		{
			entry->takes = 0;
			entry->refusals = 0;
		}
		entry->available = available;
		entry->next_expiry = next_expiry;
		entry->stock_relid = relid;
		entry->loaded = true;
		entry->changes++;
	}
	SpinLockRelease(&entry->mutex);
	return same;
}

/*
 * Take qty units: first from units this transaction has arranged to arrive,
 * then from the counter.  Returns false, taking nothing, if there are not
 * enough.  *available gets what is left (as this transaction sees it).
 */
bool
HotTake(HotEntry *entry, int64 qty, int64 *available)
{
	HotUse	   *use = CurrentUse(entry);
	int64		local = Min(use->arriving, qty);
	int64		need = qty - local;
	bool		ok;

	SpinLockAcquire(&entry->mutex);
	ok = entry->available >= need;
	if (ok)
	{
		entry->available -= need;
		/* a figure for monitoring: it stops at the bigint maximum */
		if (pg_add_s64_overflow(entry->takes, qty, &entry->takes))
			entry->takes = PG_INT64_MAX;
		entry->changes++;
	}
	else
		entry->refusals++;
	*available = entry->available;
	SpinLockRelease(&entry->mutex);

	if (ok)
	{
		use->arriving -= local;
		use->taken += need;
	}
	*available += use->arriving;
	return ok;
}

/* Give back units this transaction took and will not use after all. */
void
HotUntake(HotEntry *entry, int64 qty)
{
	HotUse	   *use = CurrentUse(entry);
	int64		back = Min(qty, use->taken);

	use->taken -= back;
	use->arriving += qty - back;
	SpinLockAcquire(&entry->mutex);
	entry->available += back;
	entry->changes++;
	SpinLockRelease(&entry->mutex);
}

/*
 * Units that become available when this transaction commits.  Refused when
 * the counter could not hold them: callers that raise a hot row's units hold
 * its lock exclusively and check on_hand first, so this is the last guard.
 */
void
HotArrive(HotEntry *entry, int64 qty)
{
	HotUse	   *use = CurrentUse(entry);
	int64		total;
	bool		overflow;

	SpinLockAcquire(&entry->mutex);
	overflow = pg_add_s64_overflow(entry->available, use->arriving, &total) ||
		pg_add_s64_overflow(total, qty, &total);
	SpinLockRelease(&entry->mutex);
	if (overflow)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("quantity out of range"),
				 errdetail("The row's available units would not fit in a bigint.")));
	use->arriving += qty;
}

/* Units available now, as this transaction sees them. */
int64
HotAvailable(HotEntry *entry)
{
	HotUse	   *use = FindUse(entry, GetCurrentTransactionNestLevel());
	int64		available;

	SpinLockAcquire(&entry->mutex);
	available = entry->available;
	SpinLockRelease(&entry->mutex);
	return available + (use ? use->arriving : 0);
}

/* Count a request the counter could not serve without taking from it. */
void
HotRefused(HotEntry *entry, uint64 generation)
{
	SpinLockAcquire(&entry->mutex);
	if (entry->generation == generation)
		entry->refusals++;
	SpinLockRelease(&entry->mutex);
}

/* May a held reservation of this row be past its expiry by now? */
bool
HotExpiryDue(HotEntry *entry)
{
	TimestampTz next;

	SpinLockAcquire(&entry->mutex);
	next = entry->next_expiry;
	SpinLockRelease(&entry->mutex);
	return next <= GetCurrentStatementStartTimestamp();
}

/*
 * The row's expiry notes so far: read before a statement finds the next
 * expiry among the holds it can see, and handed to HotSetNextExpiry.
 */
uint64
HotExpiryNotes(HotEntry *entry)
{
	uint64		notes;

	SpinLockAcquire(&entry->mutex);
	notes = entry->expiry_notes;
	SpinLockRelease(&entry->mutex);
	return notes;
}

/*
 * Record that no held reservation of the row expires before next_expiry, as
 * a statement found after HotExpiryNotes returned notes.  A hold noted since
 * (one whose transaction had not committed when the statement looked) keeps
 * its earlier time: it may be invisible to that statement.
 */
void
HotSetNextExpiry(HotEntry *entry, TimestampTz next_expiry, uint64 notes)
{
	SpinLockAcquire(&entry->mutex);
	if (entry->expiry_notes == notes || next_expiry < entry->next_expiry)
		entry->next_expiry = next_expiry;
	SpinLockRelease(&entry->mutex);
}

/* Lower the row's next expiry to expires_at; the caller holds the mutex. */
static void
NoteExpiry(HotEntry *entry, TimestampTz expires_at)
{
	if (expires_at < entry->next_expiry)
		entry->next_expiry = expires_at;
	entry->expiry_notes++;
}

/*
 * A reservation of the row, made by this transaction, expires at
 * expires_at.  Noted now, and again when the transaction commits (when the
 * hold becomes visible to everyone), so that no expiry pass that ran in
 * between can have overwritten it.
 */
void
HotNoteExpiry(HotEntry *entry, TimestampTz expires_at)
{
	HotUse	   *use = CurrentUse(entry);

	use->expiry = Min(use->expiry, expires_at);
	SpinLockAcquire(&entry->mutex);
	NoteExpiry(entry, expires_at);
	SpinLockRelease(&entry->mutex);
}

/*
 * Stop using a row's counter (set_hot(false)): callers take the cold path
 * from now on, and the slot is free for another row.  The caller holds the
 * row's lock exclusively, so no other transaction is using the counter
 * (hot-row writers hold it in share mode); if this one did earlier, the
 * slot stays taken until it is reclaimed.  Backends that kept a pointer to
 * the slot find its generation changed.
 */
void
HotUnload(HotEntry *entry, uint64 generation)
{
	bool		free = false;
	HotKey		key;

	LWLockAcquire(InvState->lock, LW_EXCLUSIVE);
	SpinLockAcquire(&entry->mutex);
	if (entry->generation == generation)
	{
		entry->loaded = false;
		free = entry->uses == 0;
		if (free)
		{
			key = entry->key;
			entry->generation = 0;
		}
	}
	SpinLockRelease(&entry->mutex);
	if (free)
	{
		hash_search(InvHotTable, &key, HASH_REMOVE, NULL);
		InvHotFree[InvState->nfree++] = entry - InvHotSlots;
	}
	LWLockRelease(InvState->lock);
}

/* Settle a record: add its arrivals (commit) or return its takes (abort). */
static void
SettleUse(HotUse *use, bool commit)
{
	HotEntry   *entry = use->entry;

	SpinLockAcquire(&entry->mutex);
	entry->available += commit ? use->arriving : use->taken;
	if (commit && use->expiry != DT_NOEND)
		NoteExpiry(entry, use->expiry);
	entry->uses--;
	entry->changes++;
	SpinLockRelease(&entry->mutex);
}

/* Transaction end: settle every record. */
static void
HotXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (NumUses > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that moved stock of a hot row"),
						 errhint("Hot-row counters live in shared memory; commit such transactions directly.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			for (int i = 0; i < NumUses; i++)
				SettleUse(&Uses[i], event == XACT_EVENT_COMMIT ||
						  event == XACT_EVENT_PARALLEL_COMMIT);
			NumUses = 0;
			break;
		default:
			break;
	}
}

/* Subtransaction end: fold records into the parent, or return their takes. */
static void
HotSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
				   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	int			kept = 0;

	if (event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;
	for (int i = 0; i < NumUses; i++)
	{
		HotUse		use = Uses[i];

		if (use.level >= level)
		{
			if (event == SUBXACT_EVENT_ABORT_SUB)
			{
				SettleUse(&use, false);
				continue;
			}
			use.level = level - 1;
			for (int j = 0; j < kept; j++)
			{
				if (Uses[j].entry == use.entry && Uses[j].level == use.level)
				{
					Uses[j].taken += use.taken;
					Uses[j].arriving += use.arriving;
					Uses[j].expiry = Min(Uses[j].expiry, use.expiry);
					SpinLockAcquire(&use.entry->mutex);
					use.entry->uses--;
					SpinLockRelease(&use.entry->mutex);
					use.entry = NULL;
					break;
				}
			}
			if (use.entry == NULL)
				continue;
		}
		Uses[kept++] = use;
	}
	NumUses = kept;
}

/* Register the transaction callbacks (once per process, from _PG_init). */
void
HotInit(void)
{
	RegisterXactCallback(HotXactCallback, NULL);
	RegisterSubXactCallback(HotSubXactCallback, NULL);
}
