/*
 * movement.c
 *	  Opening a stock row for writing, and moving its counters.
 *
 * A row is written in one of two modes:
 *
 *	 cold	The writer holds the row's advisory lock (rowlock.c) until its
 *			transaction ends, decides from the row as read under that lock,
 *			and updates the stock row directly.
 *	 hot	The row's available units are an escrow counter in shared memory
 *			(hot.c).  Writers take and return units through the counter, and
 *			journal each movement as a queue row (inventory.pending) instead
 *			of updating the stock row.  Only a merge writes a hot row's stock
 *			row.
 *
 * InvOpen picks the mode: a row whose counter is loaded is hot, and its
 * writers hold the row's advisory lock in share mode, so they never wait for
 * each other; any other row is opened cold, with the lock exclusive, and if
 * its stock row says hot, the counter is loaded right there from the
 * committed tables (stock row plus queue), and the row continues hot.  So a
 * counter is only ever loaded, and only ever unloaded (set_hot), while no
 * transaction is using it: the exclusive lock waits for them all, in the
 * lock manager, where a deadlock is detected and a wait can be cancelled.
 *
 * Either way a movement appends exactly one ledger row describing the change,
 * in the same statement that applies it, so the ledger and the counters can
 * never disagree.
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "inventory.h"
#include "hot.h"

static InvQuery RowRead = {
	"SELECT s.on_hand + p.on_hand, s.reserved + p.reserved, s.hot, "
	"       o.overdue, p.n, o.next_expiry, s.xmin "
	"FROM inventory.stock s "
	"CROSS JOIN LATERAL (SELECT count(*) AS n, "
	"                           COALESCE(sum(q.on_hand_delta), 0)::bigint AS on_hand, "
	"                           COALESCE(sum(q.reserved_delta), 0)::bigint AS reserved "
	"                      FROM inventory.pending q "
	"                     WHERE q.sku = s.sku AND q.location = s.location) p "
	"CROSS JOIN LATERAL (SELECT COALESCE(sum(r.qty) FILTER (WHERE r.expires_at <= statement_timestamp()), 0)::bigint AS overdue, "
	"                           min(r.expires_at) AS next_expiry "
	"                      FROM inventory.reservation r "
	"                     WHERE r.sku = s.sku AND r.location = s.location "
	"                       AND r.state = 'held') o "
	"WHERE s.sku = $1 AND s.location = $2",
	2, {TEXTOID, TEXTOID}
};

static InvQuery RowCreate = {
	"INSERT INTO inventory.stock (sku, location) VALUES ($1, $2) "
	"ON CONFLICT DO NOTHING",
	2, {TEXTOID, TEXTOID}
};

static InvQuery Move = {
	"WITH u AS (UPDATE inventory.stock "
	"              SET on_hand = on_hand + $5, reserved = reserved + $6 "
	"            WHERE sku = $3 AND location = $4 "
	"        RETURNING on_hand - reserved AS available), "
	"     l AS (INSERT INTO inventory.ledger "
	"             (op, key, sku, location, on_hand_delta, reserved_delta, ref) "
	"           SELECT $1, $2, $3, $4, $5, $6, $7 FROM u) "
	"SELECT available FROM u",
	7, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, TEXTOID}
};

static InvQuery HotMove = {
	"WITH l AS (INSERT INTO inventory.ledger "
	"             (op, key, sku, location, on_hand_delta, reserved_delta, ref) "
	"           VALUES ($1, $2, $3, $4, $5, $6, $7)) "
	"INSERT INTO inventory.pending (sku, location, on_hand_delta, reserved_delta) "
	"VALUES ($3, $4, $5, $6)",
	7, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, TEXTOID}
};

/* The key is recorded and the movement queued in one statement. */
static InvQuery HotApply = {
	"WITH k AS (INSERT INTO inventory.request (key, op, args) "
	"           VALUES ($2, $8, $9::json) ON CONFLICT (key) DO NOTHING RETURNING 1), "
	"     l AS (INSERT INTO inventory.ledger "
	"             (op, key, sku, location, on_hand_delta, reserved_delta, ref) "
	"           SELECT $1, $2, $3, $4, $5, $6, $7 FROM k), "
	"     p AS (INSERT INTO inventory.pending (sku, location, on_hand_delta, reserved_delta) "
	"           SELECT $3, $4, $5, $6 FROM k) "
	"SELECT count(*) FROM k",
	9, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID}
};

static InvQuery MergeRow = {
	"WITH d AS (DELETE FROM inventory.pending WHERE sku = $1 AND location = $2 "
	"           RETURNING on_hand_delta, reserved_delta), "
	"     t AS (SELECT count(*) AS n, COALESCE(sum(on_hand_delta), 0)::bigint AS on_hand, "
	"                  COALESCE(sum(reserved_delta), 0)::bigint AS reserved FROM d), "
	"     u AS (UPDATE inventory.stock s SET on_hand = s.on_hand + t.on_hand, "
	"                  reserved = s.reserved + t.reserved "
	"             FROM t WHERE s.sku = $1 AND s.location = $2 AND t.n > 0) "
	"SELECT n FROM t",
	2, {TEXTOID, TEXTOID}
};

/*
 * Read a stock row, queued movements included, as the latest commits left it
 * (whatever the isolation level); false if it does not exist.
 */
bool
InvRowRead(const char *sku, const char *location, InvRow *row)
{
	Datum		values[2] = {CStringGetTextDatum(sku), CStringGetTextDatum(location)};
	bool		isnull;

	InvRunLatest(&RowRead, values, NULL, 1);
	if (SPI_processed == 0)
		return false;
	row->on_hand = InvResultInt8(0, 1);
	row->reserved = InvResultInt8(0, 2);
	row->hot = InvResultBool(0, 3);
	row->overdue = InvResultInt8(0, 4);
	row->queued = InvResultInt8(0, 5);
	row->next_expiry = InvResultIsNull(0, 6) ? DT_NOEND : InvResultInt8(0, 6);
	row->mine = TransactionIdIsCurrentTransactionId(
		DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 7, &isnull)));
	return true;
}

/* Units a row can sell now: a held reservation past expiry is not counted. */
int64
InvRowAvailable(const InvRow *row)
{
	return row->on_hand - row->reserved + row->overdue;
}

/*
 * Open a stock row for writing (see the file header).  Hot mode sets
 * target->hot, registered for this transaction, and holds the row lock in
 * share mode, or exclusively with INV_LOCK.  Cold mode takes the lock and reads the row into
 * target->row (target->found).  With INV_NOWAIT, returns false instead of
 * waiting for the lock.
 */
bool
InvOpen(InvTarget *target, const char *sku, const char *location, int flags)
{
	HotEntry   *entry = HotFind(sku, location, false);
	bool		nowait = (flags & INV_NOWAIT) != 0;
	bool		exclusive = (flags & INV_LOCK) != 0;

	target->sku = sku;
	target->location = location;
	target->hot = NULL;
	target->found = false;
	target->prepared = false;

	/*
	 * Hot: the lock first (share mode, or exclusive if asked for), then the
	 * counter, which cannot be unloaded or reloaded while we hold it.  If it
	 * was unloaded meanwhile, go cold; a share lock is given back first, so
	 * that two callers never both hold it shared while asking for it
	 * exclusively (each would wait for the other).
	 */
	if (entry && HotIsLoaded(entry))
	{
		if (!(exclusive ? InvLockRow(sku, location, nowait)
			  : InvLockRowShared(sku, location, nowait)))
			return false;
		if (HotBegin(entry))
		{
			target->hot = entry;
			target->found = true;
			return true;
		}
		InvUnlockRow(sku, location, !exclusive);
	}
	if (!InvLockRow(sku, location, nowait))
		return false;
	target->found = InvRowRead(sku, location, &target->row);

	/*
	 * Load a hot row's counter, under the exclusive lock, so while no
	 * transaction uses it; from committed figures only: if this transaction
	 * has changed the row, it stays cold until it ends.
	 */
	if (target->found && target->row.hot && !target->row.mine)
	{
		entry = HotFind(sku, location, true);
		if (!HotBegin(entry))
		{
			HotLoad(entry, target->row.on_hand - target->row.reserved,
					target->row.next_expiry);
			if (!HotBegin(entry))
				elog(ERROR, "inventory: hot row (%s, %s) failed to load", sku, location);
		}
		target->hot = entry;

		/*
		 * Now hold the lock as any hot-row writer does, in share mode, so
		 * the rest of this transaction does not hold up the row's other
		 * writers (a lock this transaction held before stays held).
		 */
		if (!exclusive)
		{
			(void) InvLockRowShared(sku, location, false);
			InvUnlockRow(sku, location, false);
		}
	}
	return true;
}

/*
 * Before a cold row is written: merge movements left queued from when it was
 * hot, and expire held reservations past their expiry (at most
 * inventory.expire_batch of them, so a sale never does unbounded work; the
 * worker expires the rest), so that on_hand and reserved count only live
 * holds.  One that a concurrent confirm or release has locked, or beyond the
 * batch, is still counted as held.  Idempotent.
 */
void
InvPrepare(InvTarget *target)
{
	InvRow	   *row = &target->row;

	if (target->hot || !target->found || target->prepared)
		return;
	target->prepared = true;
	if (row->queued > 0)
		InvMerge(target->sku, target->location);
	if (row->overdue > 0)
		row->reserved -= InvExpireOverdue(target, InvExpireBatch, NULL);
	row->overdue = 0;
}

/*
 * Can qty units be taken from the row now?  Hot: takes them from the counter
 * (if the counter falls short while held reservations may have expired,
 * those are expired first, and their units serve this transaction at once).
 * Cold: checks the row as read under its lock; the caller moves the units.
 * *available gets the units left (hot) or available (cold).
 */
bool
InvTake(InvTarget *target, int64 qty, int64 *available)
{
	if (target->hot == NULL)
	{
		InvPrepare(target);
		*available = InvRowAvailable(&target->row);
		return *available >= qty;
	}
	if (HotTake(target->hot, qty, available))
		return true;
	if (!HotExpiryDue(target->hot))
		return false;
	InvExpireOverdue(target, InvExpireBatch, NULL);
	return HotTake(target->hot, qty, available);
}

/* Create an empty stock row if it does not exist. */
void
InvRowCreate(const char *sku, const char *location)
{
	Datum		values[2] = {CStringGetTextDatum(sku), CStringGetTextDatum(location)};

	InvRun(&RowCreate, values, NULL, 0);
}

/* Fill the parameters shared by the movement statements. */
static void
MoveValues(Datum *values, char *nulls, const char *op, const char *key,
		   const InvTarget *target, int64 on_hand_delta, int64 reserved_delta,
		   const char *ref)
{
	values[0] = CStringGetTextDatum(op);
	values[1] = CStringGetTextDatum(key);
	values[2] = CStringGetTextDatum(target->sku);
	values[3] = CStringGetTextDatum(target->location);
	values[4] = Int64GetDatum(on_hand_delta);
	values[5] = Int64GetDatum(reserved_delta);
	values[6] = ref ? CStringGetTextDatum(ref) : (Datum) 0;
	memset(nulls, ' ', 7);
	nulls[6] = ref ? ' ' : 'n';
}

/*
 * Apply a movement and journal it.  Cold: update the stock row.  Hot: queue
 * it; units it returns arrive in the counter when the transaction commits
 * (units it takes must have been taken from the counter by the caller).
 * Returns the row's available units afterwards.
 */
int64
InvMove(const char *op, const char *key, InvTarget *target,
		int64 on_hand_delta, int64 reserved_delta, const char *ref)
{
	Datum		values[7];
	char		nulls[7];

	int64		change = on_hand_delta - reserved_delta;
	int64		after;

	MoveValues(values, nulls, op, key, target, on_hand_delta, reserved_delta, ref);
	if (target->hot)
	{
		InvRun(&HotMove, values, nulls, 0);
		if (change > 0)
			HotArrive(target->hot, change);
		/* units it takes were taken from the counter just before */
		after = HotAvailable(target->hot);
		InvNotifyLevel(target->sku, target->location, after - change, after);
		return after;
	}
	InvRun(&Move, values, nulls, 0);
	if (SPI_processed != 1)
		elog(ERROR, "inventory: stock row (%s, %s) vanished during %s",
			 target->sku, target->location, op);
	after = InvResultInt8(0, 1);
	InvNotifyLevel(target->sku, target->location, after - change, after);
	return after;
}

/*
 * Record a call's key and queue its one movement on a hot row, in one
 * statement.  Returns false, writing nothing, if the key was recorded
 * meanwhile.
 */
bool
InvHotApply(const char *op, const char *key, const char *call, const char *args,
			InvTarget *target, int64 on_hand_delta, int64 reserved_delta,
			const char *ref)
{
	Datum		values[9];
	char		nulls[9];

	MoveValues(values, nulls, op, key, target, on_hand_delta, reserved_delta, ref);
	values[7] = CStringGetTextDatum(call);
	values[8] = CStringGetTextDatum(args);
	nulls[7] = nulls[8] = ' ';
	InvRun(&HotApply, values, nulls, 1);
	return InvResultInt8(0, 1) == 1;
}

/* Fold a row's committed queued movements into its stock row. */
int64
InvMerge(const char *sku, const char *location)
{
	Datum		values[2] = {CStringGetTextDatum(sku), CStringGetTextDatum(location)};

	InvRun(&MergeRow, values, NULL, 1);
	return InvResultInt8(0, 1);
}

/* Fill in an outcome's available figure from the row as it is now. */
void
InvReadAvailable(InvOutcome *out)
{
	InvRow		row;
	HotEntry   *entry;

	if (out->sku == NULL || out->location == NULL)
		return;
	entry = HotFind(out->sku, out->location, false);
	if (entry && HotIsLoaded(entry))
	{
		out->has_available = true;
		out->available = HotAvailable(entry);
		return;
	}
	if (!InvRowRead(out->sku, out->location, &row))
		return;
	out->has_available = true;
	out->available = InvRowAvailable(&row);
}
