/*
 * stock.c
 *	  restock, adjust, deduct, deduct_cart, reserve_cart and available.
 *
 * Every mutating call follows one order, which is what makes it safe:
 *
 *	 1. lock the stock row(s) (rowlock.c), in ascending lock-key order;
 *	 2. check the key (keys.c): a replay is "duplicate" and changes nothing;
 *	 3. read the row(s) and decide the status; a status other than "ok"
 *		writes nothing;
 *	 4. record the key, then move the counters and journal each movement.
 *
 * A deduct is a cart of one line, so both share one code path.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "inventory.h"
#include "hot.h"

/* One line of a deduction: a stock row and the units taken from it. */
typedef struct DeductLine
{
	char	   *sku;
	char	   *location;
	int64		qty;
	int64		lock_key;
} DeductLine;

static InvQuery AvailableOne = {
	"SELECT available FROM inventory.stock_levels WHERE sku = $1 AND location = $2",
	2, {TEXTOID, TEXTOID}
};

static InvQuery AvailableAll = {
	"SELECT sum(available)::bigint FROM inventory.stock_levels WHERE sku = $1",
	1, {TEXTOID}
};

/* Order lines by lock key, then by row, so rows are locked canonically. */
static int
CompareLines(const void *a, const void *b)
{
	const DeductLine *la = (const DeductLine *) a;
	const DeductLine *lb = (const DeductLine *) b;
	int			c;

	if (la->lock_key != lb->lock_key)
		return la->lock_key < lb->lock_key ? -1 : 1;
	c = strcmp(la->sku, lb->sku);
	if (c != 0)
		return c;
	return strcmp(la->location, lb->location);
}

/*
 * Sort lines canonically and sum the lines of one row; returns the new
 * count.  The whole cart's units must fit a bigint too (22003).
 */
static int
CanonicalLines(DeductLine *lines, int n)
{
	int			out = 0;
	int64		total = 0;

	for (int i = 0; i < n; i++)
	{
		lines[i].lock_key = InvRowLockKey(lines[i].sku, lines[i].location);
		total = InvAddQty(total, lines[i].qty);
	}
	qsort(lines, n, sizeof(DeductLine), CompareLines);
	for (int i = 0; i < n; i++)
	{
		if (out > 0 && CompareLines(&lines[out - 1], &lines[i]) == 0)
			lines[out - 1].qty = InvAddQty(lines[out - 1].qty, lines[i].qty);
		else
			lines[out++] = lines[i];
	}
	return out;
}

/*
 * The canonical arguments of a deduct ({"sku", "location", "qty"}) or of a
 * cart ({"lines": [one such object per line]}, and "ttl" for a held one).
 */
static char *
CartArgs(const DeductLine *lines, int n, bool single, const Interval *ttl)
{
	StringInfoData buf;

	if (single)
		return InvRowArgs(lines[0].sku, lines[0].location, "qty", lines[0].qty);
	InvArgsBegin(&buf);
	InvArgsArray(&buf, "lines");
	for (int i = 0; i < n; i++)
	{
		InvArgsItem(&buf);
		InvArgsText(&buf, "sku", lines[i].sku);
		InvArgsText(&buf, "location", lines[i].location);
		InvArgsInt8(&buf, "qty", lines[i].qty);
		InvArgsEnd(&buf);
	}
	appendStringInfoChar(&buf, ']');
	if (ttl != NULL)
		InvArgsText(&buf, "ttl", InvIntervalText(ttl));
	InvArgsEnd(&buf);
	return buf.data;
}

/* The canonical arguments of a deduct or of a cart sold (CartArgs). */
static char *
DeductArgs(const DeductLine *lines, int n, bool single)
{
	return CartArgs(lines, n, single, NULL);
}

/*
 * The everyday way for ordinary rows (movement.c's header): lock the rows in
 * canonical order, then one statement applies the call if it can go through
 * as asked.  Returns false, having written nothing and let go of the locks it
 * took, when the general way must decide (a hot row, a busy row with nowait,
 * a missing row, units short, a hold due, a key taken...).
 */
static bool
FastDeduct(const char *op, const char *key, DeductLine *lines, int n,
		   bool nowait, InvOutcome *out)
{
	bool		single = n == 1 && strcmp(op, "deduct") == 0;
	int			locked = 0;
	int64		available;
	bool		done = false;

	/* under the other levels the general way decides from the latest commits */
	if (IsolationUsesXactSnapshot())
		return false;
	for (int i = 0; i < n; i++)
		if (InvHotLoaded(lines[i].sku, lines[i].location))
			return false;
	for (; locked < n; locked++)
		if (!InvLockRow(lines[locked].sku, lines[locked].location, nowait))
			break;

	if (locked == n && single)
	{
		InvMovement m;

		InvMovementInit(&m, "deduct", key, -lines[0].qty, 0);
		m.call = op;
		if (InvFastMove(&m, lines[0].sku, lines[0].location, lines[0].qty,
						NULL, &available))
		{
			out->has_available = true;
			out->available = available;
			done = true;
		}
	}
	else if (locked == n)
	{
		char	  **skus = palloc(sizeof(char *) * n);
		char	  **locations = palloc(sizeof(char *) * n);
		int64	   *qtys = palloc(sizeof(int64) * n);
		int64	   *after = palloc(sizeof(int64) * n);
		InvMovement *m = palloc(sizeof(InvMovement) * n);

		for (int i = 0; i < n; i++)
		{
			skus[i] = lines[i].sku;
			locations[i] = lines[i].location;
			qtys[i] = lines[i].qty;
			InvMovementInit(&m[i], "deduct", key, -qtys[i], 0);
		}
		m[0].call = op;
		done = InvTablesMoves(m, skus, locations, qtys, n, NULL, after);
		for (int i = 0; done && i < n; i++)
			InvNotifyLevel(skus[i], locations[i], after[i] + qtys[i], after[i]);
	}
	if (!done)
		while (--locked >= 0)
			InvUnlockRow(lines[locked].sku, lines[locked].location, false);
	return done;
}

/* Return the units taken from hot rows' counters for lines not applied. */
static void
GiveBack(InvTarget *targets, DeductLine *lines, bool *taken, int n)
{
	for (int i = 0; i < n; i++)
		if (taken[i] && targets[i].hot)
			HotUntake(targets[i].hot, lines[i].qty);
}

/*
 * Take units from every line's row, all or nothing.  op is "deduct" (one
 * line, outcome about that row) or "deduct_cart" (outcome about the line that
 * decided it, no available figure when all lines went through).
 *
 * A one-line deduct from a hot row is the hot path proper: no row lock, the
 * units come from the escrow counter, and the key is recorded together with
 * the queued movement in one statement.  Only when the counter falls short is
 * the key looked up, so that a retry of an applied deduct still answers
 * "duplicate" rather than "insufficient".
 */
static void
DeductLines(const char *op, const char *key, DeductLine *lines, int n,
			bool nowait, InvOutcome *out)
{
	bool		single = strcmp(op, "deduct") == 0;
	InvTarget  *targets = palloc(sizeof(InvTarget) * n);
	bool	   *taken = palloc0(sizeof(bool) * n);
	char	   *args;
	int			failed = -1;
	bool		short_of_units = false;
	int64		available = 0;
	bool		hot_path;

	InvSetOutcome(out, INV_OK, single ? lines[0].sku : NULL,
				  single ? lines[0].location : NULL);

	/*
	 * A sold-out hot row answers from its counter, without the row lock: the
	 * answer is true of the counter as it was a moment ago, which is all any
	 * refusal can promise.  The key is still looked up, so that a retry of an
	 * applied deduct answers "duplicate".
	 */
	if (single)
	{
		uint64		generation;
		HotEntry   *entry = HotFind(lines[0].sku, lines[0].location, false, &generation);
		int64		left = 0;
		bool		due = false;
		bool		loaded = entry && HotPeek(entry, generation, &left, &due);

		if (loaded && left < lines[0].qty && !due)
		{
			if (InvKeyCheck(key, op, DeductArgs(lines, n, single)) == INV_KEY_DUPLICATE)
				out->status = INV_DUPLICATE;
			else
			{
				out->status = INV_INSUFFICIENT;
				HotRefused(entry, generation);
			}
			out->has_available = true;
			out->available = left;
			return;
		}

		/*
		 * Outside a transaction block, hand the deduct to a merged-mode batch
		 * (merged.c).  The committer locks the row and takes the units; this
		 * backend takes no lock.  If it sends us back, go the usual way.
		 */
		if (loaded && InvMergedEligible() &&
			InvMergedDeduct(lines[0].sku, lines[0].location, lines[0].qty, key, out))
			return;
	}

	if (FastDeduct(op, key, lines, n, nowait, out))
		return;

	/* built only now: the everyday ways never need them */
	args = DeductArgs(lines, n, single);
	for (int i = 0; i < n; i++)
	{
		if (!InvOpen(&targets[i], lines[i].sku, lines[i].location,
					 nowait ? INV_NOWAIT : 0))
		{
			while (--i >= 0)
				if (targets[i].hot == NULL)
					InvUnlockRow(lines[i].sku, lines[i].location, false);
			/* an applied key says so, rather than "busy" */
			out->status = InvKeyCheck(key, op, args) == INV_KEY_DUPLICATE ?
				INV_DUPLICATE : INV_BUSY;
			InvReadAvailable(out);
			return;
		}
	}
	hot_path = single && targets[0].hot != NULL;

	if (!hot_path && InvKeyCheck(key, op, args) == INV_KEY_DUPLICATE)
	{
		out->status = INV_DUPLICATE;
		InvReadAvailable(out);
		return;
	}

	for (int i = 0; i < n && failed < 0; i++)
	{
		if (!targets[i].found)
			failed = i;
		else if (!(taken[i] = InvTake(&targets[i], lines[i].qty, &available)))
		{
			failed = i;
			short_of_units = true;
		}
	}
	if (failed >= 0)
	{
		GiveBack(targets, lines, taken, n);
		if (hot_path && InvKeyCheck(key, op, args) == INV_KEY_DUPLICATE)
		{
			out->status = INV_DUPLICATE;
			InvReadAvailable(out);
			return;
		}
		InvSetOutcome(out, short_of_units ? INV_INSUFFICIENT : INV_NOT_FOUND,
					  lines[failed].sku, lines[failed].location);
		out->has_available = short_of_units;
		out->available = available;
		return;
	}

	/*
	 * The hot path looked nothing up.  Its insertion of the call row below
	 * waits for a transaction deleting the key's row and then goes through:
	 * so while an archive runs, a key whose row is there in any state is
	 * looked up first (an archiving transaction's deletion is not committed
	 * yet, or its digest is there).  A key with no row may only have been
	 * archived; one archived after this look is caught after the insertion
	 * (InvKeyNotArchived).
	 */
	if (hot_path && (InvKeyInArchiving(key) ? InvKeyCheck(key, op, args) == INV_KEY_DUPLICATE
					 : InvKeyArchived(key)))
	{
		GiveBack(targets, lines, taken, n);
		out->status = INV_DUPLICATE;
		InvReadAvailable(out);
		return;
	}

	/*
	 * Write: the first row records the call's key.  If another transaction
	 * recorded it meanwhile (a concurrent retry on the hot path; a call on
	 * other rows), that row writes nothing, and the answer comes from the
	 * key: "duplicate", or the key-reuse error.
	 */
	for (int i = 0; i < n; i++)
	{
		InvMovement m;

		InvMovementInit(&m, "deduct", key, -lines[i].qty, 0);
		m.call = i == 0 ? op : NULL;
		m.args = args;
		if (!InvMoveRecorded(&m, &targets[i], &available))
		{
			GiveBack(targets, lines, taken, n);
			(void) InvKeyCheck(key, op, args);
			out->status = INV_DUPLICATE;
			InvReadAvailable(out);
			return;
		}
		if (single)
		{
			out->has_available = true;
			out->available = available;
		}
	}
}

PG_FUNCTION_INFO_V1(deduct);

/* inventory.deduct(sku, qty, key, location, nowait): take units now. */
Datum
deduct(PG_FUNCTION_ARGS)
{
	DeductLine	line;
	char	   *key;
	bool		nowait;
	InvOutcome	out;

	line.sku = InvArgName(fcinfo, 0, "sku");
	line.qty = InvArgQty(fcinfo, 1, "qty");
	key = InvArgName(fcinfo, 2, "key");
	line.location = InvArgName(fcinfo, 3, "location");
	nowait = InvArgBool(fcinfo, 4, "nowait");
	line.lock_key = InvRowLockKey(line.sku, line.location);

	InvCheckReady("deduct()");
	SPI_connect();
	DeductLines("deduct", key, &line, 1, nowait, &out);
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
}

/*
 * A cart's lines from its arguments (skus, qtys, and locations at argument
 * locations_argno, NULL for 'default'), checked, in canonical order with the
 * lines of one row summed; returns how many.
 */
static int
CartLines(FunctionCallInfo fcinfo, int locations_argno, DeductLine **out)
{
	Datum	   *skus;
	Datum	   *qtys;
	Datum	   *locations = NULL;
	int			n;
	DeductLine *lines;

	n = InvArgArray(fcinfo, 0, "skus", TEXTOID, &skus);
	InvCheckSameLength(n, InvArgArray(fcinfo, 1, "qtys", INT8OID, &qtys), "qtys");
	(void) InvArgName(fcinfo, 2, "key");
	if (!PG_ARGISNULL(locations_argno))
		InvCheckSameLength(n, InvArgArray(fcinfo, locations_argno, "locations", TEXTOID,
										  &locations), "locations");
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a cart must have at least one line")));

	lines = palloc(sizeof(DeductLine) * n);
	for (int i = 0; i < n; i++)
	{
		lines[i].sku = InvElemName(skus[i], "sku");
		lines[i].location = locations ? InvElemName(locations[i], "location") : "default";
		lines[i].qty = DatumGetInt64(qtys[i]);
		InvCheckQty(lines[i].qty, "qty");
	}
	*out = lines;
	return CanonicalLines(lines, n);
}

PG_FUNCTION_INFO_V1(deduct_cart);

/*
 * inventory.deduct_cart(skus, qtys, key, locations): all lines or none.
 * Lines of one row are summed before the check.
 */
Datum
deduct_cart(PG_FUNCTION_ARGS)
{
	DeductLine *lines;
	int			n = CartLines(fcinfo, 3, &lines);
	char	   *key = InvArgName(fcinfo, 2, "key");
	InvOutcome	out;

	InvCheckReady("deduct_cart()");
	SPI_connect();
	DeductLines("deduct_cart", key, lines, n, false, &out);
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
}

PG_FUNCTION_INFO_V1(reserve_cart);

/*
 * inventory.reserve_cart(skus, qtys, key, ttl, locations): hold every line
 * or none until now + ttl, as one reservation under key with a part per
 * stock row (lines of one row summed); confirm, release and expiry act on
 * the whole cart, and partial steps on a line.  The outcome as deduct_cart's.
 */
Datum
reserve_cart(PG_FUNCTION_ARGS)
{
	DeductLine *lines;
	int			n = CartLines(fcinfo, 4, &lines);
	char	   *key = InvArgName(fcinfo, 2, "key");
	TimestampTz expires_at;
	Interval   *ttl;
	char	   *args;
	char	  **skus = palloc(sizeof(char *) * n);
	char	  **locations = palloc(sizeof(char *) * n);
	int64	   *qtys = palloc(sizeof(int64) * n);
	int64	   *available = palloc(sizeof(int64) * n);
	int			failed;
	InvOutcome	out;

	InvCheckReady("reserve_cart()");
	ttl = InvArgTtl(fcinfo, 3, &expires_at);
	args = CartArgs(lines, n, false, ttl);
	for (int i = 0; i < n; i++)
	{
		skus[i] = lines[i].sku;
		locations[i] = lines[i].location;
		qtys[i] = lines[i].qty;
	}

	SPI_connect();
	InvSetOutcome(&out, InvReserveLines(skus, locations, qtys, n, key, args, ttl,
										expires_at, available, &failed), NULL, NULL);
	if (failed >= 0)
	{
		out.sku = skus[failed];
		out.location = locations[failed];
		out.has_available = strcmp(out.status, INV_NOT_FOUND) != 0;
		out.available = available[failed];
	}
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
}

PG_FUNCTION_INFO_V1(restock);

/* inventory.restock(sku, qty, key, location): add units; creates the row. */
Datum
restock(PG_FUNCTION_ARGS)
{
	char	   *sku = InvArgName(fcinfo, 0, "sku");
	int64		qty = InvArgQty(fcinfo, 1, "qty");
	char	   *key = InvArgName(fcinfo, 2, "key");
	char	   *location = InvArgName(fcinfo, 3, "location");
	char	   *args;
	InvOutcome	out;
	InvRow		row;
	InvTarget	target;
	InvMovement m;

	InvSetOutcome(&out, INV_OK, sku, location);
	InvMovementInit(&m, "restock", key, qty, 0);
	m.call = "restock";

	InvCheckReady("restock()");
	SPI_connect();

	/* the everyday way: an ordinary row, one statement */
	if (!InvHotLoaded(sku, location))
	{
		InvLockRow(sku, location, false);
		if (InvFastMove(&m, sku, location, 0, NULL, &out.available))
		{
			out.has_available = true;
			SPI_finish();
			return InvReturnOutcome(fcinfo, &out);
		}
	}

	/* exclusively, also a hot row: the on_hand check below must be exact */
	args = InvRowArgs(sku, location, "qty", qty);
	m.args = args;
	(void) InvOpen(&target, sku, location, INV_LOCK);
	if (InvKeyCheck(key, "restock", args) == INV_KEY_DUPLICATE)
		out.status = INV_DUPLICATE;
	else
	{
		if (InvRowRead(sku, location, &row))
			(void) InvAddQty(row.on_hand, qty);
		if (!target.found)
			InvRowCreate(sku, location);
		InvPrepare(&target);
		out.has_available = true;
		out.available = InvMove(&m, &target);
	}
	if (!out.has_available)
		InvReadAvailable(&out);
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
}

PG_FUNCTION_INFO_V1(adjust);

/*
 * inventory.adjust(sku, on_hand, key, location): stocktake.  Sets on_hand to
 * the counted figure; refused with "conflict" below the reserved units.
 */
Datum
adjust(PG_FUNCTION_ARGS)
{
	char	   *sku = InvArgName(fcinfo, 0, "sku");
	int64		counted;
	char	   *key = InvArgName(fcinfo, 2, "key");
	char	   *location = InvArgName(fcinfo, 3, "location");
	char	   *args;
	InvOutcome	out;
	InvTarget	target;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("on_hand must not be null")));
	counted = PG_GETARG_INT64(1);
	if (counted < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("on_hand must not be negative"),
				 errdetail("The value given was " INT64_FORMAT ".", counted)));

	args = InvRowArgs(sku, location, "on_hand", counted);
	InvSetOutcome(&out, INV_OK, sku, location);

	InvCheckReady("adjust()");
	SPI_connect();
	(void) InvOpen(&target, sku, location, INV_LOCK);
	if (InvKeyCheck(key, "adjust", args) == INV_KEY_DUPLICATE)
		out.status = INV_DUPLICATE;
	else if (!target.found)
		out.status = INV_NOT_FOUND;
	else
	{
		int64		change;
		int64		left;

		/*
		 * Cold: the count may not go below the reserved units.  Hot: units
		 * taken by transactions still running count as well, so a count
		 * below the current figure must take its difference from the
		 * counter.
		 */
		InvPrepare(&target);
		if (target.hot)
			(void) InvRowRead(sku, location, &target.row);
		change = counted - target.row.on_hand;
		if (target.hot ? (change < 0 && !InvTake(&target, -change, &left))
			: counted < target.row.reserved)
			out.status = INV_CONFLICT;
		else
		{
			InvMovement m;

			InvMovementInit(&m, "adjust", key, change, 0);
			m.call = "adjust";
			m.args = args;
			m.has_counted = true;
			m.counted = counted;
			out.has_available = true;
			out.available = InvMove(&m, &target);
		}
	}
	if (!out.has_available)
		InvReadAvailable(&out);
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
}

PG_FUNCTION_INFO_V1(available);

/*
 * inventory.available(sku, location): units available now at one location,
 * or over all locations when location is NULL; NULL for an unknown sku.
 */
Datum
available(PG_FUNCTION_ARGS)
{
	char	   *sku = InvArgName(fcinfo, 0, "sku");
	Datum		values[2];
	bool		isnull;
	int64		result;

	values[0] = CStringGetTextDatum(sku);
	InvCheckReady(NULL);
	SPI_connect();
	if (PG_ARGISNULL(1))
		InvRun(&AvailableAll, values, NULL, 1);
	else
	{
		char	   *location = InvArgName(fcinfo, 1, "location");
		uint64		generation;
		HotEntry   *entry = HotFind(sku, location, false, &generation);
		int64		left;

		/* a loaded counter is the freshest figure of a hot row */
		if (entry && HotPeek(entry, generation, &left, NULL))
		{
			SPI_finish();
			PG_RETURN_INT64(left);
		}
		values[1] = CStringGetTextDatum(location);
		InvRun(&AvailableOne, values, NULL, 1);
	}
	isnull = SPI_processed == 0 || InvResultIsNull(0, 1);
	result = isnull ? 0 : InvResultInt8(0, 1);
	SPI_finish();
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_INT64(result);
}
