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
 * never disagree.  The first row a keyed call writes also records its key
 * (keys.c), so recording a call costs no statement and no row of its own.
 *
 * The everyday case, an ordinary row with nothing to tidy up, has a shorter
 * way (InvFastMove, tables.c): with the row's lock held, the stock row is
 * updated if, and only if, the call can go through as asked (the row is
 * ordinary, no hold of it is due to expire, it has the units, the key is
 * free), and the movement journalled with the call's key, directly, without
 * a statement.  Whatever it cannot decide (no such row, short of units, a
 * hold due, a hot row, a retry) makes it write nothing, and the caller takes
 * the general way above, which reads the row and decides.
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "inventory.h"
#include "hot.h"

/*
 * A stock row's figures, its queue and its held reservations included.  Only
 * a hot row has a queue (set_hot(false) merges it in the transaction that
 * makes the row ordinary), and an ordinary row has holds only when units are
 * reserved: the others are not looked for (a CASE evaluates its subquery only
 * when its condition holds, which a join could not promise).
 */
#define QUEUED(expr) \
	"CASE WHEN s.hot THEN (SELECT " expr " FROM inventory.pending q " \
	"                       WHERE q.sku = s.sku AND q.location = s.location) ELSE 0 END"
#define HELD(expr, none) \
	"CASE WHEN s.hot OR s.reserved > 0 THEN (SELECT " expr " FROM inventory.reservation r " \
	"                                         WHERE r.sku = s.sku AND r.location = s.location " \
	"                                           AND r.state = 'held') ELSE " none " END"
#define ROW_FIGURES \
	"s.on_hand + " QUEUED("COALESCE(sum(q.on_hand_delta), 0)::bigint") ", " \
	"s.reserved + " QUEUED("COALESCE(sum(q.reserved_delta), 0)::bigint") ", s.hot, " \
	HELD("COALESCE(sum(r.qty) FILTER (WHERE r.expires_at <= statement_timestamp()), 0)::bigint", "0") ", " \
	QUEUED("count(*)") ", " \
	HELD("min(r.expires_at)", "NULL") ", s.xmin, s.next_expiry "

static InvQuery RowRead = {
	"SELECT " ROW_FIGURES "FROM inventory.stock s "
	"WHERE s.sku = $1 AND s.location = $2",
	2, {TEXTOID, TEXTOID}
};

/* Many rows at once: the row's position in the arrays first. */
static InvQuery RowsRead = {
	"SELECT u.n, " ROW_FIGURES
	"FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(sku, location, n) "
	"JOIN inventory.stock s ON s.sku = u.sku AND s.location = u.location",
	2, {TEXTARRAYOID, TEXTARRAYOID}
};

static InvQuery RowsCreate = {
	"INSERT INTO inventory.stock (sku, location) "
	"SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
	2, {TEXTARRAYOID, TEXTARRAYOID}
};

static InvQuery RowCreate = {
	"INSERT INTO inventory.stock (sku, location) VALUES ($1, $2) "
	"ON CONFLICT DO NOTHING",
	2, {TEXTOID, TEXTOID}
};

/*
 * The parameters every movement statement shares: $1 op, $2 key, $3 sku,
 * $4 location, $5 on_hand_delta, $6 reserved_delta, $7 ref, $8 call,
 * $9 counted, $10 the expiry of a hold it makes ('infinity' if none).
 */
#define MOVE_ARGS 10
#define MOVE_TYPES TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, TEXTOID, \
	TEXTOID, INT8OID, TIMESTAMPTZOID

/* The movement's ledger row, from the rows of CTE "u" (one, or none). */
#define JOURNAL \
	"     l AS (INSERT INTO inventory.ledger " \
	"             (op, key, sku, location, on_hand_delta, reserved_delta, ref, call, counted) " \
	"           SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 FROM u " \
	"           ON CONFLICT (key) WHERE call IS NOT NULL DO NOTHING RETURNING 1) "

/* Cold: update the stock row and journal the movement. */
static InvQuery Move = {
	"WITH u AS (UPDATE inventory.stock "
	"              SET on_hand = on_hand + $5, reserved = reserved + $6, "
	"                  next_expiry = LEAST(next_expiry, $10) "
	"            WHERE sku = $3 AND location = $4 "
	"              AND reserved + $6 BETWEEN 0 AND on_hand + $5 "
	"        RETURNING on_hand - reserved AS available), "
	JOURNAL
	"SELECT available, (SELECT count(*) FROM l) FROM u",
	MOVE_ARGS, {MOVE_TYPES}
};

/*
 * Undo a cold movement whose ledger row could not be written (its call's key
 * was recorded meanwhile by another transaction): the stock row goes back.
 */
static InvQuery Unmove = {
	"UPDATE inventory.stock SET on_hand = on_hand - $3, reserved = reserved - $4 "
	"WHERE sku = $1 AND location = $2",
	4, {TEXTOID, TEXTOID, INT8OID, INT8OID}
};

/* Hot: journal the movement and queue it (if its call row could be recorded). */
static InvQuery HotMove = {
	"WITH l AS (INSERT INTO inventory.ledger "
	"             (op, key, sku, location, on_hand_delta, reserved_delta, ref, call, counted) "
	"           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
	"           ON CONFLICT (key) WHERE call IS NOT NULL DO NOTHING RETURNING 1), "
	"     p AS (INSERT INTO inventory.pending (sku, location, on_hand_delta, reserved_delta) "
	"           SELECT $3, $4, $5, $6 FROM l) "
	"SELECT count(*) FROM l",
	MOVE_ARGS, {MOVE_TYPES}
};

/*
 * Fold a row's committed queued movements into its stock row, and bring its
 * next expiry down to its held reservations' (holds made while the row was
 * hot did not lower it).
 */
static InvQuery MergeRow = {
	"WITH d AS (DELETE FROM inventory.pending WHERE sku = $1 AND location = $2 "
	"           RETURNING on_hand_delta, reserved_delta), "
	"     t AS (SELECT count(*) AS n, COALESCE(sum(on_hand_delta), 0)::bigint AS on_hand, "
	"                  COALESCE(sum(reserved_delta), 0)::bigint AS reserved FROM d), "
	"     u AS (UPDATE inventory.stock s SET on_hand = s.on_hand + t.on_hand, "
	"                  reserved = s.reserved + t.reserved, "
	"                  next_expiry = LEAST(s.next_expiry, "
	"                      (SELECT min(r.expires_at) FROM inventory.reservation r "
	"                        WHERE r.sku = $1 AND r.location = $2 AND r.state = 'held')) "
	"             FROM t WHERE s.sku = $1 AND s.location = $2 AND t.n > 0) "
	"SELECT n FROM t",
	2, {TEXTOID, TEXTOID}
};

/*
 * The overdue holds of a row, up to $3, locked; the rest is per mode.  The
 * batch is chosen once (MATERIALIZED: as a semi-join's inner side the LIMIT
 * would be evaluated again for every candidate, skipping the rows already
 * locked, and bound nothing).  Only held parts expire: a part a step settled
 * (same key, same row) keeps its state.
 */
#define OVERDUE_OF_ROW \
	"WITH d AS MATERIALIZED (SELECT key, part FROM inventory.reservation " \
	"                         WHERE sku = $1 AND location = $2 AND state = 'held' " \
	"                           AND expires_at <= statement_timestamp() " \
	"                         ORDER BY expires_at LIMIT $3 " \
	"                         FOR UPDATE SKIP LOCKED), " \
	"     e AS (UPDATE inventory.reservation r SET state = 'expired' FROM d " \
	"            WHERE r.key = d.key AND r.part = d.part " \
	"        RETURNING r.key, r.qty), " \
	"     l AS (INSERT INTO inventory.ledger (op, key, sku, location, reserved_delta) " \
	"           SELECT 'expire', key, $1, $2, -qty FROM e), "

/* The next expiry among the row's holds other than those just expired. */
#define NEXT_EXPIRY \
	"(SELECT min(r.expires_at) FROM inventory.reservation r " \
	"  WHERE r.sku = $1 AND r.location = $2 AND r.state = 'held' " \
	"    AND r.key NOT IN (SELECT key FROM e))"

/*
 * Cold row: expire, journal, lower reserved in the stock row and note its
 * next expiry there (also when none was due: the noted one had passed).
 */
static InvQuery ExpireCold = {
	OVERDUE_OF_ROW
	"     u AS (UPDATE inventory.stock "
	"              SET reserved = reserved - COALESCE((SELECT sum(qty) FROM e), 0), "
	"                  next_expiry = COALESCE(" NEXT_EXPIRY ", 'infinity') "
	"            WHERE sku = $1 AND location = $2) "
	"SELECT count(*)::bigint, COALESCE(sum(qty), 0)::bigint, NULL::timestamptz FROM e",
	3, {TEXTOID, TEXTOID, INT8OID}
};

/* Hot row: expire, journal, queue; also the next expiry among the rest. */
static InvQuery ExpireHot = {
	OVERDUE_OF_ROW
	"     q AS (INSERT INTO inventory.pending (sku, location, reserved_delta) "
	"           SELECT $1, $2, -qty FROM e) "
	"SELECT count(*)::bigint, COALESCE(sum(qty), 0)::bigint, " NEXT_EXPIRY " FROM e",
	3, {TEXTOID, TEXTOID, INT8OID}
};

/*
 * Expire up to limit overdue held reservations of an opened stock row.
 * Returns the units given back (for a hot row they arrive in its counter for
 * this transaction now, for others at commit); *count gets how many.
 */
int64
InvExpireOverdue(InvTarget *target, int64 limit, int64 *count)
{
	Datum		values[3] = {CStringGetTextDatum(target->sku),
		CStringGetTextDatum(target->location),
	Int64GetDatum(limit)};
	int64		units;
	uint64		notes = target->hot ? HotExpiryNotes(target->hot) : 0;

	InvRun(target->hot ? &ExpireHot : &ExpireCold, values, NULL, 0);
	if (count)
		*count = InvResultInt8(0, 1);
	units = InvResultInt8(0, 2);
	if (target->hot)
	{
		if (units > 0)
		{
			int64		before = HotAvailable(target->hot);

			HotArrive(target->hot, units);
			InvNotifyLevel(target->sku, target->location, before, before + units);
		}
		/* the next expiry among the holds left (all overdue ones done) */
		if (InvResultInt8(0, 1) < limit)
			HotSetNextExpiry(target->hot, InvResultIsNull(0, 3) ? DT_NOEND
							 : InvResultInt8(0, 3), notes);
	}
	return units;
}

/* Fill a row from columns from..from+7 of result row r (ROW_FIGURES). */
static void
RowFromResult(int r, int from, InvRow *row)
{
	bool		isnull;

	row->on_hand = InvResultInt8(r, from);
	row->reserved = InvResultInt8(r, from + 1);
	row->hot = InvResultBool(r, from + 2);
	row->overdue = InvResultInt8(r, from + 3);
	row->queued = InvResultInt8(r, from + 4);
	row->next_expiry = InvResultIsNull(r, from + 5) ? DT_NOEND : InvResultInt8(r, from + 5);
	row->mine = TransactionIdIsCurrentTransactionId(
		DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[r],
											SPI_tuptable->tupdesc, from + 6, &isnull)));
	row->noted_expiry = InvResultInt8(r, from + 7);
}

/*
 * Read a stock row, queued movements included, as the latest commits left it
 * (whatever the isolation level); false if it does not exist.
 */
bool
InvRowRead(const char *sku, const char *location, InvRow *row)
{
	Datum		values[2] = {CStringGetTextDatum(sku), CStringGetTextDatum(location)};

	InvRunLatest(&RowRead, values, NULL, 1);
	if (SPI_processed == 0)
		return false;
	RowFromResult(0, 1, row);
	return true;
}

/*
 * Read many stock rows in one statement, as InvRowRead reads one: found[i]
 * says whether row i exists, rows[i] gets its figures.
 */
void
InvRowsRead(char **skus, char **locations, int n, InvRow *rows, bool *found)
{
	Datum		values[2] = {InvTextArray(skus, n), InvTextArray(locations, n)};

	memset(found, 0, sizeof(bool) * n);
	InvRunLatest(&RowsRead, values, NULL, 0);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		int			i = (int) InvResultInt8((int) r, 1) - 1;

		found[i] = true;
		RowFromResult((int) r, 2, &rows[i]);
	}
}

/* Create the stock rows that do not exist yet, empty, in one statement. */
void
InvRowsCreate(char **skus, char **locations, int n)
{
	Datum		values[2] = {InvTextArray(skus, n), InvTextArray(locations, n)};

	InvRun(&RowsCreate, values, NULL, 0);
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
	uint64		generation;
	HotEntry   *entry = HotFind(sku, location, false, &generation);
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
	if (entry && HotPeek(entry, generation, NULL, NULL))
	{
		if (!(exclusive ? InvLockRow(sku, location, nowait)
			  : InvLockRowShared(sku, location, nowait)))
			return false;
		if (HotBegin(entry, generation))
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
		/* (a slot not loaded yet may be reclaimed meanwhile: then again) */
		do
			entry = HotFind(sku, location, true, &generation);
		while (!HotBegin(entry, generation) &&
			   (!HotLoad(entry, generation, target->row.on_hand - target->row.reserved,
						 target->row.next_expiry) ||
				!HotBegin(entry, generation)));
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
 * Is the row hot, its counter loaded (a hot row's writers take the hot way)?
 * For choosing the everyday way only: see HotMaybeLoaded.
 */
bool
InvHotLoaded(const char *sku, const char *location)
{
	return HotMaybeLoaded(sku, location);
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
	/* overdue holds, or a noted next expiry that has passed: tidy up */
	if (row->overdue > 0 || row->noted_expiry <= GetCurrentStatementStartTimestamp())
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

static InvQuery HoldInsert = {
	"INSERT INTO inventory.reservation "
	"  (key, part, sku, location, qty, created_at, expires_at, ttl) "
	"VALUES ($1, $2, $3, $4, $5, statement_timestamp(), $6, $7)",
	7, {TEXTOID, INT2OID, TEXTOID, TEXTOID, INT8OID, TIMESTAMPTZOID, INTERVALOID}
};

/*
 * A reservation's part number as stored (smallint): a reservation of more
 * parts (stock rows, or parts split off by steps) is refused, 54000.
 */
Datum
InvPartDatum(int part)
{
	if (part > PG_INT16_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a reservation cannot have more than %d parts", PG_INT16_MAX),
				 errhint("Hold fewer stock rows under one key, or settle a reservation in fewer steps.")));
	return Int16GetDatum((int16) part);
}

/*
 * The hold a reserve made (its movement applied): part 0 of a reserve, parts
 * 1, 2, ... of a reservation from several locations.
 */
void
InvInsertHold(const char *key, int part, const char *sku, const char *location,
			  int64 qty, TimestampTz expires_at, Interval *ttl)
{
	Datum		values[7] = {CStringGetTextDatum(key), InvPartDatum(part),
		CStringGetTextDatum(sku), CStringGetTextDatum(location), Int64GetDatum(qty),
	TimestampTzGetDatum(expires_at), IntervalPGetDatum(ttl)};

	InvRun(&HoldInsert, values, NULL, 0);
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
MoveValues(Datum *values, char *nulls, const InvMovement *m,
		   const char *sku, const char *location)
{
	memset(nulls, ' ', MOVE_ARGS);
	values[0] = CStringGetTextDatum(m->op);
	values[1] = CStringGetTextDatum(m->key);
	values[2] = CStringGetTextDatum(sku);
	values[3] = CStringGetTextDatum(location);
	values[4] = Int64GetDatum(m->on_hand_delta);
	values[5] = Int64GetDatum(m->reserved_delta);
	values[6] = m->ref ? CStringGetTextDatum(m->ref) : (Datum) 0;
	nulls[6] = m->ref ? ' ' : 'n';
	values[7] = m->call ? CStringGetTextDatum(m->call) : (Datum) 0;
	nulls[7] = m->call ? ' ' : 'n';
	values[8] = Int64GetDatum(m->counted);
	nulls[8] = m->has_counted ? ' ' : 'n';
	values[9] = TimestampTzGetDatum(m->expires_at);
}

/* Take back a cold movement of the stock row (see Unmove). */
static void
UnmoveRow(const InvMovement *m, const char *sku, const char *location)
{
	Datum		values[4] = {CStringGetTextDatum(sku), CStringGetTextDatum(location),
	Int64GetDatum(m->on_hand_delta), Int64GetDatum(m->reserved_delta)};

	InvRun(&Unmove, values, NULL, 0);
}

/*
 * Apply a movement and journal it.  Cold: update the stock row.  Hot: queue
 * it; units it returns arrive in the counter when the transaction commits
 * (units it takes must have been taken from the counter by the caller).  If
 * it records a call whose key was taken meanwhile, raises the key's error.
 * Returns the row's available units afterwards.
 */
int64
InvMove(const InvMovement *m, InvTarget *target)
{
	int64		available;

	if (!InvMoveRecorded(m, target, &available))
		InvKeyTaken(m->key, m->call, m->args);
	return available;
}

/*
 * InvMove, except that a movement whose call's key was recorded meanwhile by
 * another transaction changes nothing and returns false: the caller answers
 * from the key (duplicate, conflict for a tombstone, or the key-reuse error).
 */
bool
InvMoveRecorded(const InvMovement *m, InvTarget *target, int64 *available)
{
	Datum		values[MOVE_ARGS];
	char		nulls[MOVE_ARGS];
	int64		change = m->on_hand_delta - m->reserved_delta;

	MoveValues(values, nulls, m, target->sku, target->location);
	if (target->hot)
	{
		InvRun(&HotMove, values, nulls, 1);
		if (InvResultInt8(0, 1) == 0)
			return false;
		InvKeyNotArchived(m);
		if (change > 0)
			HotArrive(target->hot, change);
		if (m->expires_at != DT_NOEND)
			HotNoteExpiry(target->hot, m->expires_at);
		/* units it takes were taken from the counter just before */
		*available = HotAvailable(target->hot);
		InvNotifyLevel(target->sku, target->location, *available - change, *available);
		return true;
	}
	InvRun(&Move, values, nulls, 1);
	if (SPI_processed != 1 && IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not apply %s: stock row (%s, %s) changed after this transaction's snapshot",
						m->op, target->sku, target->location),
				 errhint("Retry the transaction.")));
	if (SPI_processed != 1)
		elog(ERROR, "inventory: stock row (%s, %s) vanished during %s",
			 target->sku, target->location, m->op);
	*available = InvResultInt8(0, 1);
	if (InvResultInt8(0, 2) == 0 && m->call != NULL)
	{
		UnmoveRow(m, target->sku, target->location);
		return false;
	}
	InvKeyNotArchived(m);
	InvNotifyLevel(target->sku, target->location, *available - change, *available);
	return true;
}

/*
 * The everyday way (see the file header): apply a movement of an ordinary
 * row at once, if it can go through as asked, keeping need units available;
 * ttl (not NULL) makes it a reserve's, with its hold.  The caller holds the
 * row's lock exclusively.  Returns false, having written nothing, when the
 * general way must decide (also always under REPEATABLE READ and
 * SERIALIZABLE: the general way decides from the latest commits rather than
 * fail on a row changed since the transaction's snapshot); true with
 * *available after the move.
 */
bool
InvFastMove(const InvMovement *m, const char *sku, const char *location,
			int64 need, Interval *ttl, int64 *available)
{
	int64		change = m->on_hand_delta - m->reserved_delta;

	if (IsolationUsesXactSnapshot() ||
		!InvTablesMoves(m, (char **) &sku, (char **) &location, &need, 1, ttl, available))
		return false;
	InvNotifyLevel(sku, location, *available - change, *available);
	return true;
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
	uint64		generation;

	if (out->sku == NULL || out->location == NULL)
		return;
	entry = HotFind(out->sku, out->location, false, &generation);
	if (entry && HotPeek(entry, generation, &out->available, NULL))
	{
		out->has_available = true;
		return;
	}
	if (!InvRowRead(out->sku, out->location, &row))
		return;
	out->has_available = true;
	out->available = InvRowAvailable(&row);
}
