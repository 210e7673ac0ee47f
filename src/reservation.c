/*
 * reservation.c
 *	  reserve, confirm, release and expire: the try/confirm/cancel lifecycle.
 *
 * A reservation moves from "held" to exactly one of "confirmed", "released"
 * or "expired", and never back.  Whoever settles it (confirm, release, or an
 * expiry pass) first locks its row in inventory.reservation (FOR UPDATE), then
 * the stock row's advisory lock; so of two racing settlers exactly one sees
 * "held", and the loser's status tells what happened.  Writers that hold a
 * stock row lock only ever take reservation rows with SKIP LOCKED, so the two
 * lock orders can never deadlock.
 *
 * A held reservation past expires_at is never counted as held by anyone:
 * confirm answers "expired" (and expires it), and every writer of its stock
 * row expires it before deciding (movement.c, InvRowPrepare).
 *
 * A release that arrives before its reservation records a tombstone key, so
 * the late reserve answers "conflict" instead of holding units forever.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "inventory.h"

static InvQuery Insert = {
	"INSERT INTO inventory.reservation "
	"  (key, sku, location, qty, created_at, expires_at) "
	"VALUES ($1, $2, $3, $4, statement_timestamp(), statement_timestamp() + $5)",
	5, {TEXTOID, TEXTOID, TEXTOID, INT8OID, INTERVALOID}
};

static InvQuery LockOne = {
	"SELECT sku, location, qty, state, expires_at <= statement_timestamp() "
	"FROM inventory.reservation WHERE key = $1 FOR UPDATE",
	1, {TEXTOID}
};

static InvQuery SetState = {
	"UPDATE inventory.reservation SET state = $2 WHERE key = $1",
	2, {TEXTOID, TEXTOID}
};

/* Expire up to $3 overdue holds of one row, journal each, fix reserved. */
static InvQuery ExpireRow = {
	"WITH e AS (UPDATE inventory.reservation SET state = 'expired' "
	"            WHERE key IN (SELECT key FROM inventory.reservation "
	"                           WHERE sku = $1 AND location = $2 AND state = 'held' "
	"                             AND expires_at <= statement_timestamp() "
	"                           ORDER BY expires_at LIMIT $3 "
	"                           FOR UPDATE SKIP LOCKED) "
	"        RETURNING key, qty), "
	"     l AS (INSERT INTO inventory.ledger (op, key, sku, location, reserved_delta) "
	"           SELECT 'expire', key, $1, $2, -qty FROM e), "
	"     u AS (UPDATE inventory.stock SET reserved = reserved - (SELECT sum(qty) FROM e) "
	"            WHERE sku = $1 AND location = $2 AND EXISTS (SELECT FROM e)) "
	"SELECT count(*)::bigint, COALESCE(sum(qty), 0)::bigint FROM e",
	3, {TEXTOID, TEXTOID, INT8OID}
};

static InvQuery OverdueRows = {
	"SELECT DISTINCT sku, location FROM inventory.reservation "
	"WHERE state = 'held' AND expires_at <= statement_timestamp()",
	0, {InvalidOid}
};

/*
 * Expire up to limit overdue held reservations of one stock row, whose lock
 * the caller holds.  Returns the units given back; *count gets how many.
 */
int64
InvExpireOverdue(const char *sku, const char *location, int64 limit, int64 *count)
{
	Datum		values[3] = {CStringGetTextDatum(sku), CStringGetTextDatum(location),
	Int64GetDatum(limit)};

	InvRun(&ExpireRow, values, NULL, 0);
	if (count)
		*count = InvResultInt8(0, 1);
	return InvResultInt8(0, 2);
}

PG_FUNCTION_INFO_V1(reserve);

/*
 * inventory.reserve(sku, qty, key, ttl, location): the try phase.  Holds
 * units until expires_at = now + ttl.
 */
Datum
reserve(PG_FUNCTION_ARGS)
{
	char	   *sku = InvArgName(fcinfo, 0, "sku");
	int64		qty = InvArgQty(fcinfo, 1, "qty");
	char	   *key = InvArgName(fcinfo, 2, "key");
	char	   *location = InvArgName(fcinfo, 4, "location");
	Interval   *ttl;
	Interval	zero;
	StringInfoData args;
	InvOutcome	out;
	InvKeyState state;
	InvRow		row;

	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ttl must not be null")));
	ttl = PG_GETARG_INTERVAL_P(3);
	memset(&zero, 0, sizeof(zero));
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(ttl),
										  IntervalPGetDatum(&zero))) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must be greater than zero"),
				 errdetail("The value given was %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(ttl))))));

	InvArgsBegin(&args);
	InvArgsText(&args, "sku", sku);
	InvArgsText(&args, "location", location);
	InvArgsInt8(&args, "qty", qty);
	/* independent of the session's IntervalStyle */
	InvArgsText(&args, "ttl", psprintf("%d months %d days " INT64_FORMAT " microseconds",
									   ttl->month, ttl->day, ttl->time));
	InvArgsEnd(&args);
	InvSetOutcome(&out, INV_OK, sku, location);

	SPI_connect();
	InvLockRow(sku, location, false);
	state = InvKeyCheck(key, "reserve", args.data);
	if (state == INV_KEY_NEW)
	{
		if (!InvRowPrepare(sku, location, &row))
			out.status = INV_NOT_FOUND;
		else if (InvRowAvailable(&row) < qty)
			out.status = INV_INSUFFICIENT;
		else if ((state = InvKeyRecord(key, "reserve", args.data)) == INV_KEY_NEW)
		{
			Datum		values[5] = {CStringGetTextDatum(key), CStringGetTextDatum(sku),
				CStringGetTextDatum(location), Int64GetDatum(qty),
			IntervalPGetDatum(ttl)};

			InvRun(&Insert, values, NULL, 0);
			out.has_available = true;
			out.available = InvMove("reserve", key, sku, location, 0, qty, NULL);
		}
	}
	if (state == INV_KEY_DUPLICATE)
		out.status = INV_DUPLICATE;
	else if (state == INV_KEY_TOMBSTONE)
		out.status = INV_CONFLICT;
	if (!out.has_available)
		InvReadAvailable(&out);
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
}

/* Confirm or release a held reservation that the caller has locked. */
static int64
Settle(const char *key, const char *sku, const char *location, int64 qty,
	   bool confirm)
{
	Datum		values[2] = {CStringGetTextDatum(key),
	CStringGetTextDatum(confirm ? "confirmed" : "released")};

	InvRun(&SetState, values, NULL, 0);
	if (confirm)
		return InvMove("confirm", key, sku, location, -qty, -qty, NULL);
	return InvMove("release", key, sku, location, 0, -qty, NULL);
}

/*
 * The confirm and release calls.  Locks the reservation, then its stock
 * row, and moves it from held to confirmed or released; a hold past its
 * expiry is expired instead.
 */
static void
ConfirmOrRelease(const char *key, bool confirm, InvOutcome *out)
{
	const char *state;
	char	   *sku;
	char	   *location;
	int64		qty;
	bool		overdue;
	InvRow		row;
	Datum		values[1] = {CStringGetTextDatum(key)};

	InvSetOutcome(out, INV_OK, NULL, NULL);
	InvRun(&LockOne, values, NULL, 1);
	if (SPI_processed == 0)
	{
		char	   *op;
		char	   *args;

		/*
		 * Unknown reservation.  A release records a tombstone; if the key
		 * was recorded meanwhile by a reserve that just committed, settle
		 * that reservation instead.
		 */
		bool		found = false;

		if (!confirm && !InvKeyTombstone(key))
		{
			InvRun(&LockOne, values, NULL, 1);
			found = SPI_processed > 0;
		}
		if (!found)
		{
			out->status = INV_NOT_FOUND;
			if (confirm && InvKeyLookup(key, &op, &args) &&
				strcmp(op, "release") == 0 && args == NULL)
				out->status = INV_EXPIRED;
			return;
		}
	}

	sku = InvCopyOut(InvResultText(0, 1));
	location = InvCopyOut(InvResultText(0, 2));
	qty = InvResultInt8(0, 3);
	state = InvResultText(0, 4);
	overdue = InvResultBool(0, 5);
	out->sku = sku;
	out->location = location;

	if (strcmp(state, "held") != 0)
	{
		if (strcmp(state, confirm ? "confirmed" : "released") == 0)
			out->status = INV_DUPLICATE;
		else if (strcmp(state, "confirmed") == 0)
			out->status = INV_CONFLICT;
		else
			out->status = INV_EXPIRED;
		InvReadAvailable(out);
		return;
	}

	/*
	 * Under the row lock, expire the row's overdue holds; ours among them if
	 * it is overdue (SKIP LOCKED does not skip our own lock).
	 */
	InvLockRow(sku, location, false);
	(void) InvRowPrepare(sku, location, &row);
	out->has_available = true;
	if (overdue)
	{
		out->status = INV_EXPIRED;
		out->available = InvRowAvailable(&row);
	}
	else
		out->available = Settle(key, sku, location, qty, confirm);
}

PG_FUNCTION_INFO_V1(confirm);

/* inventory.confirm(key): the held units are sold. */
Datum
confirm(PG_FUNCTION_ARGS)
{
	char	   *key = InvArgName(fcinfo, 0, "key");
	InvOutcome	out;

	SPI_connect();
	ConfirmOrRelease(key, true, &out);
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
}

PG_FUNCTION_INFO_V1(release);

/* inventory.release(key): the held units return to available. */
Datum
release(PG_FUNCTION_ARGS)
{
	char	   *key = InvArgName(fcinfo, 0, "key");
	InvOutcome	out;

	SPI_connect();
	ConfirmOrRelease(key, false, &out);
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
}

/* A stock row with overdue holds, ordered for locking. */
typedef struct OverdueRow
{
	char	   *sku;
	char	   *location;
	int64		lock_key;
} OverdueRow;

/* Order rows by lock key, the canonical locking order. */
static int
CompareOverdue(const void *a, const void *b)
{
	int64		ka = ((const OverdueRow *) a)->lock_key;
	int64		kb = ((const OverdueRow *) b)->lock_key;

	return ka < kb ? -1 : ka > kb ? 1 : 0;
}

PG_FUNCTION_INFO_V1(expire);

/*
 * inventory.expire(): release every held reservation past its expires_at,
 * now, in this transaction.  Holds locked by a concurrent confirm or release
 * are left to it.  Returns how many reservations were expired.
 */
Datum
expire(PG_FUNCTION_ARGS)
{
	int64		total = 0;
	int			n;
	OverdueRow *rows;

	SPI_connect();
	InvRun(&OverdueRows, NULL, NULL, 0);
	n = (int) SPI_processed;
	rows = palloc(sizeof(OverdueRow) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		rows[i].sku = InvResultText(i, 1);
		rows[i].location = InvResultText(i, 2);
		rows[i].lock_key = InvRowLockKey(rows[i].sku, rows[i].location);
	}
	qsort(rows, n, sizeof(OverdueRow), CompareOverdue);
	for (int i = 0; i < n; i++)
	{
		int64		count;

		InvLockRow(rows[i].sku, rows[i].location, false);
		InvExpireOverdue(rows[i].sku, rows[i].location, INT64_MAX, &count);
		total += count;
	}
	SPI_finish();
	PG_RETURN_INT64(total);
}
