/*
 * autohot.c
 *	  Hot rows without hints: the worker promotes a row whose writers queue
 *	  on its lock, and makes it ordinary again once it has gone quiet.
 *
 * A flash sale does not wait for an admin to call set_hot.  With
 * inventory.auto_hot on, every writer that has to wait for a row's lock
 * counts the wait (rowlock.c).  Each inventory.auto_hot_interval the worker
 * takes the counts: a row whose writers waited inventory.auto_hot_waits times
 * or more is made hot exactly as set_hot makes it, in a transaction of its
 * own that first waits for the row's lock exclusively, behind the writers
 * already queued.  Those finish the ordinary way, one after another; every
 * writer after them finds the row hot and takes from its counter, inside a
 * transaction block or not.  Waiting is cheap to count and means what
 * matters: a row that is merely busy but never makes anyone wait stays
 * ordinary, where each call costs least.
 *
 * A row the rule made hot is made ordinary again (its slot freed for another
 * row) when its counter has changed fewer than auto_hot_waits times an
 * interval for inventory.auto_hot_quiet.  The worker remembers each slot's
 * count of changes from one interval to the next, and the generation of the
 * row that had it, so a slot that changed hands starts counting afresh.
 *
 * set_hot decides for good: a row made hot or ordinary by hand is pinned
 * (stock.pinned), and the rule never changes a pinned row; set_hot(sku,
 * NULL) hands a row back to the rule.  The rule's own changes do not pin.
 * Both go through InvSetHot below, so both take the row's lock exclusively,
 * unload or claim the counter's slot and merge the queue the same way.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "inventory.h"
#include "hot.h"

int			InvAutoHotWaits = 20;
int			InvAutoHotInterval = 1000;
static int	AutoHotQuiet = 60;

/* Rows promoted per interval, at most (the ones whose writers waited most). */
#define MAX_PROMOTIONS 16

/*
 * By hand, always, pinning the row; by the rule, only a row not pinned that
 * is not so already.
 */
static InvQuery SetHot = {
	"UPDATE inventory.stock SET hot = $3, pinned = $4 "
	" WHERE sku = $1 AND location = $2 AND ($4 OR (NOT pinned AND hot <> $3))",
	4, {TEXTOID, TEXTOID, BOOLOID, BOOLOID}
};

static InvQuery Unpin = {
	"UPDATE inventory.stock SET pinned = false WHERE sku = $1 AND location = $2",
	2, {TEXTOID, TEXTOID}
};

static InvQuery HotState = {
	"SELECT hot, pinned FROM inventory.stock WHERE sku = $1 AND location = $2",
	2, {TEXTOID, TEXTOID}
};

/* Define the rule's settings (from _PG_init). */
void
InvAutoHotInit(void)
{
	DefineCustomBoolVariable("inventory.auto_hot",
							 "Make rows hot, and ordinary again, without set_hot.",
							 "A row whose writers queue on its lock is made hot; one that has gone quiet, ordinary.",
							 &InvAutoHot,
							 false,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("inventory.auto_hot_waits",
							"Waits for one row's lock within an interval that make the row hot.",
							"A row made hot by the rule is made ordinary again after fewer changes than this per interval for auto_hot_quiet.",
							&InvAutoHotWaits,
							20, 1, INT_MAX,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("inventory.auto_hot_interval",
							"Time over which waits for a row's lock are counted.",
							NULL,
							&InvAutoHotInterval,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("inventory.auto_hot_quiet",
							"How long a row made hot by the rule must be quiet before it is made ordinary again.",
							NULL,
							&AutoHotQuiet,
							60, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
}

/*
 * Make a row hot or ordinary, by hand (set_hot) or by the rule (see the file
 * header), waiting for the row's lock exclusively: so while no transaction
 * uses its counter.  Returns false if nothing changed (no such row, or the
 * rule may not change it).
 */
bool
InvSetHot(const char *sku, const char *location, bool hot, bool by_hand)
{
	Datum		values[4] = {CStringGetTextDatum(sku), CStringGetTextDatum(location),
	BoolGetDatum(hot), BoolGetDatum(by_hand)};
	uint64		generation;

	InvLockRow(sku, location, false);
	InvRun(&SetHot, values, NULL, 0);
	if (SPI_processed == 0)
		return false;
	if (hot)
		(void) HotFind(sku, location, true, &generation);	/* claim a slot now */
	else
	{
		HotEntry   *entry = HotFind(sku, location, false, &generation);

		/* unloaded and its slot freed, for another row to use */
		if (entry)
			HotUnload(entry, generation);
		InvMerge(sku, location);
	}
	return true;
}

/*
 * Hand a row back to the rule (set_hot(sku, NULL)); false if no such row.
 * Under the row's lock, as every writer of a stock row.
 */
bool
InvUnpinHot(const char *sku, const char *location)
{
	Datum		values[2] = {CStringGetTextDatum(sku), CStringGetTextDatum(location)};

	InvLockRow(sku, location, false);
	InvRun(&Unpin, values, NULL, 0);
	return SPI_processed > 0;
}

/*
 * May the rule make the row hot (or ordinary)?  Read without its lock: a row
 * that is pinned, or already so, is not worth queueing for.
 */
static bool
RuleMayMake(const char *sku, const char *location, bool hot)
{
	Datum		values[2] = {CStringGetTextDatum(sku), CStringGetTextDatum(location)};

	InvRun(&HotState, values, NULL, 1);
	return SPI_processed == 1 && InvResultBool(0, 1) != hot && !InvResultBool(0, 2);
}

/*
 * The rule waits for a row's lock at most an interval, and at least a second
 * (a lock_timeout error is logged, and the next interval tries again).
 */
static void
BoundLockWait(void)
{
	char		timeout[32];

	snprintf(timeout, sizeof(timeout), "%d", Max(InvAutoHotInterval, 1000));
	(void) set_config_option("lock_timeout", timeout, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * The rows whose writers queued in the last interval, to promote (at most
 * MAX_PROMOTIONS, the most waited for first); *n gets how many.
 */
InvRowTally *
InvAutoHotCandidates(int *n)
{
	InvRowTally *rows = palloc(sizeof(InvRowTally) * MAX_PROMOTIONS);

	*n = InvTakeLockWaits(InvAutoHotWaits, rows, MAX_PROMOTIONS);
	return rows;
}

/* Promote a row for the rule, in the caller's transaction; true if made hot. */
bool
InvAutoHotPromote(const InvRowTally *row)
{
	if (!RuleMayMake(row->sku, row->location, true))
		return false;
	BoundLockWait();
	if (!InvSetHot(row->sku, row->location, true, false))
		return false;
	ereport(LOG,
			(errmsg("inventory: row (%s, %s) made hot: its writers waited for its lock %d times in %d ms",
					row->sku, row->location, row->count, InvAutoHotInterval)));
	return true;
}

/* What the worker remembers of a slot from one interval to the next. */
typedef struct SlotWatch
{
	uint64		generation;		/* of the row watched; 0: none */
	uint64		changes;		/* the counter's changes when last seen */
	TimestampTz quiet_since;	/* 0: busy in the last interval */
	HotKey		key;			/* the row */
} SlotWatch;

static SlotWatch *Watch = NULL;

/*
 * The loaded hot rows of this database that have been quiet for
 * auto_hot_quiet, to make ordinary (at most max); *n gets how many.  Called
 * once an interval by the worker, which alone keeps Watch.
 */
InvRowTally *
InvAutoHotQuiet(int max, int *n)
{
	TimestampTz now = GetCurrentTimestamp();
	Oid			relid = InvStockRelid();
	InvRowTally *rows = palloc(sizeof(InvRowTally) * Max(max, 1));

	if (Watch == NULL)
		Watch = MemoryContextAllocZero(TopMemoryContext, sizeof(SlotWatch) * InvHotRows);
	*n = 0;
	for (int i = 0; i < InvHotRows; i++)
	{
		HotEntry   *entry = &InvHotSlots[i];
		SlotWatch  *watch = &Watch[i];
		uint64		generation;
		uint64		changes;
		bool		mine;
		HotKey		key;

		SpinLockAcquire(&entry->mutex);
		generation = entry->generation;
		changes = entry->changes;
		mine = entry->loaded && entry->key.dbid == MyDatabaseId &&
			entry->stock_relid == relid;
		if (mine)
			key = entry->key;
		SpinLockRelease(&entry->mutex);

		if (!mine)
		{
			watch->generation = 0;
			continue;
		}
		if (watch->generation != generation)
		{
			/* another row now, or a row seen the first time: start watching */
			memset(watch, 0, sizeof(SlotWatch));
			watch->generation = generation;
			watch->changes = changes;
			watch->key = key;
			continue;
		}
		if (changes - watch->changes >= (uint64) InvAutoHotWaits)
			watch->quiet_since = 0;
		else if (watch->quiet_since == 0)
			watch->quiet_since = now;
		if (watch->quiet_since != 0 && *n < max &&
			now - watch->quiet_since >= (int64) AutoHotQuiet * USECS_PER_SEC)
		{
			strlcpy(rows[*n].sku, key.sku, sizeof(rows[*n].sku));
			strlcpy(rows[*n].location, key.location, sizeof(rows[*n].location));
			rows[(*n)++].count = (int) Min(changes - watch->changes, INT_MAX);
		}
		watch->changes = changes;
	}
	return rows;
}

/*
 * Make a quiet row ordinary for the rule, in the caller's transaction; true
 * if it was made ordinary.  A pinned row is left alone, and its quiet time
 * starts again: it is looked at again only after another auto_hot_quiet
 * (then it may have been handed back to the rule).
 */
bool
InvAutoHotDemote(const InvRowTally *row)
{
	if (!RuleMayMake(row->sku, row->location, false))
	{
		for (int i = 0; i < InvHotRows; i++)
			if (Watch[i].generation != 0 && strcmp(Watch[i].key.sku, row->sku) == 0 &&
				strcmp(Watch[i].key.location, row->location) == 0)
				Watch[i].quiet_since = GetCurrentTimestamp();
		return false;
	}
	BoundLockWait();
	if (!InvSetHot(row->sku, row->location, false, false))
		return false;
	ereport(LOG,
			(errmsg("inventory: row (%s, %s) made ordinary again: quiet for %d s",
					row->sku, row->location, AutoHotQuiet)));
	return true;
}
