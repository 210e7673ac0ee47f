/*
 * reservation.c
 *	  reserve, confirm, release and expire: the try/confirm/cancel lifecycle.
 *
 * A reservation moves from "held" to exactly one of "confirmed", "released"
 * or "expired", and never back.  Whoever settles it (confirm, release, or an
 * expiry pass) first locks its row in inventory.reservation (FOR UPDATE), then
 * opens the stock row (movement.c); so of two racing settlers exactly one
 * sees "held", and the loser's status tells what happened.  Writers that hold
 * a stock row lock only ever take reservation rows with SKIP LOCKED, so the
 * two lock orders can never deadlock.
 *
 * A held reservation past expires_at is never counted as held by anyone:
 * confirm answers "expired" (and expires it), and writers of its stock row
 * expire it before deciding (InvPrepare, InvTake).
 *
 * A release that arrives before its reservation records a tombstone key, so
 * the late reserve answers "conflict" instead of holding units forever.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "inventory.h"
#include "hot.h"

/* The everyday confirm or release: a held hold not yet due, settled at once. */
static InvQuery SettleHeld = {
	"UPDATE inventory.reservation SET state = $2 "
	"WHERE key = $1 AND part = 0 AND state = 'held' AND expires_at > statement_timestamp() "
	"RETURNING sku, location, qty",
	2, {TEXTOID, TEXTOID}
};

/* A reservation's parts (one, unless it came from several locations). */
static InvQuery LockParts = {
	"SELECT sku, location, qty, state, expires_at <= statement_timestamp(), part::bigint "
	"FROM inventory.reservation WHERE key = $1 ORDER BY part FOR UPDATE",
	1, {TEXTOID}
};

static InvQuery SetState = {
	"UPDATE inventory.reservation SET state = $3 WHERE key = $1 AND part = $2",
	3, {TEXTOID, INT2OID, TEXTOID}
};

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
	TimestampTz expires_at;
	StringInfoData args;
	InvOutcome	out;
	InvKeyState state;
	InvTarget	target;
	int64		available;
	InvMovement m;

	InvCheckReady("reserve()");
	ttl = InvArgTtl(fcinfo, 3, &expires_at);

	InvArgsBegin(&args);
	InvArgsText(&args, "sku", sku);
	InvArgsText(&args, "location", location);
	InvArgsInt8(&args, "qty", qty);
	InvArgsText(&args, "ttl", InvIntervalText(ttl));
	InvArgsEnd(&args);
	InvSetOutcome(&out, INV_OK, sku, location);
	InvMovementInit(&m, "reserve", key, 0, qty);
	m.call = "reserve";
	m.args = args.data;
	m.expires_at = expires_at;

	SPI_connect();

	/* the everyday way: an ordinary row, one statement */
	if (!InvHotLoaded(sku, location))
	{
		InvLockRow(sku, location, false);
		if (InvFastMove(&m, sku, location, qty, ttl, &out.available))
		{
			out.has_available = true;
			SPI_finish();
			return InvReturnOutcome(fcinfo, &out);
		}
		InvUnlockRow(sku, location, false);
	}

	(void) InvOpen(&target, sku, location, 0);
	state = InvKeyCheck(key, "reserve", args.data);
	if (state == INV_KEY_NEW)
	{
		if (!target.found)
			out.status = INV_NOT_FOUND;
		else if (!InvTake(&target, qty, &available))
			out.status = INV_INSUFFICIENT;
		else if (!InvMoveRecorded(&m, &target, &available))
		{
			/* the key was recorded meanwhile (e.g. a tombstone): answer from it */
			if (target.hot)
				HotUntake(target.hot, qty);
			state = InvKeyCheck(key, "reserve", args.data);
		}
		else
		{
			/* the movement recorded the key; now the hold */
			InvInsertHold(key, 0, sku, location, qty, expires_at, ttl);
			out.has_available = true;
			out.available = available;
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

/* The movement that settles a hold of qty units in a final state. */
static void
SettleMovement(InvMovement *m, const char *key, int64 qty, const char *state)
{
	if (strcmp(state, "confirmed") == 0)
		InvMovementInit(m, "confirm", key, -qty, -qty);
	else
		InvMovementInit(m, strcmp(state, "released") == 0 ? "release" : "expire",
						key, 0, -qty);
}

/* Move a held part of a reservation, locked by the caller, to its final state. */
static int64
Settle(const char *key, int part, InvTarget *target, int64 qty, const char *state)
{
	Datum		values[3] = {CStringGetTextDatum(key), Int16GetDatum((int16) part),
	CStringGetTextDatum(state)};
	InvMovement m;

	InvRun(&SetState, values, NULL, 0);
	SettleMovement(&m, key, qty, state);
	return InvMove(&m, target);
}

/*
 * The everyday confirm or release: a hold that is held and not due is
 * settled by one statement (which also locks it), then its movement applied
 * to the stock row, in one statement more for an ordinary row.  Returns false,
 * having changed nothing, for any other hold (the general way decides).
 */
static bool
SettleFast(const char *key, bool confirm, InvOutcome *out)
{
	const char *state = confirm ? "confirmed" : "released";
	Datum		values[2] = {CStringGetTextDatum(key), CStringGetTextDatum(state)};
	char	   *sku;
	char	   *location;
	int64		qty;
	InvMovement m;
	InvTarget	target;

	/* directly; under the other levels as a statement (which may fail 40001) */
	if (!IsolationUsesXactSnapshot())
	{
		if (!InvTablesSettle(key, state, &sku, &location, &qty))
			return false;
	}
	else
	{
		InvRun(&SettleHeld, values, NULL, 1);
		if (SPI_processed == 0)
			return false;
		sku = InvResultText(0, 1);
		location = InvResultText(0, 2);
		qty = InvResultInt8(0, 3);
	}
	sku = InvCopyOut(sku);
	location = InvCopyOut(location);
	out->sku = sku;
	out->location = location;
	out->has_available = true;
	SettleMovement(&m, key, qty, state);

	if (!InvHotLoaded(sku, location))
	{
		InvLockRow(sku, location, false);
		if (InvFastMove(&m, sku, location, 0, NULL, &out->available))
			return true;
	}
	(void) InvOpen(&target, sku, location, 0);
	InvPrepare(&target);
	out->available = InvMove(&m, &target);
	return true;
}

/* One part of a reservation, as locked. */
typedef struct HoldPart
{
	InvRowRef	row;
	int64		qty;
	char	   *state;
	bool		overdue;
	int			part;
	InvTarget	target;
} HoldPart;

/* Order parts canonically, for locking their stock rows. */
static int
CompareParts(const void *a, const void *b)
{
	return InvRowOrder(&(*(HoldPart *const *) a)->row, &(*(HoldPart *const *) b)->row);
}

/*
 * The confirm and release calls.  Locks the reservation (every part of it),
 * then opens its stock rows in canonical order, and moves it from held to
 * confirmed or released; a hold past its expiry is expired instead.  The
 * parts of a reservation from several locations share their fate: if one is
 * expired or due (they share their expiry), all are expired.
 */
static void
ConfirmOrRelease(const char *key, bool confirm, InvOutcome *out)
{
	Datum		values[1] = {CStringGetTextDatum(key)};
	HoldPart   *parts;
	HoldPart  **order;
	int			n;
	int			held = 0;
	bool		overdue = false;
	const char *settled = NULL;

	InvSetOutcome(out, INV_OK, NULL, NULL);
	if (SettleFast(key, confirm, out))
		return;
	InvRun(&LockParts, values, NULL, 0);
	if (SPI_processed == 0)
	{
		char	   *op;
		char	   *args;
		bool		found = false;

		/* a reservation archived with its key: settled long ago */
		if (InvKeyArchived(key))
		{
			out->status = INV_DUPLICATE;
			return;
		}

		/*
		 * Unknown reservation.  A release records a tombstone; if the key
		 * was recorded meanwhile by a reserve that just committed, settle
		 * that reservation instead.
		 */
		if (!confirm && !InvKeyTombstone(key))
		{
			InvRun(&LockParts, values, NULL, 0);
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

	n = (int) SPI_processed;
	parts = palloc0(sizeof(HoldPart) * n);
	order = palloc(sizeof(HoldPart *) * n);
	for (int i = 0; i < n; i++)
	{
		parts[i].row.sku = InvCopyOut(InvResultText(i, 1));
		parts[i].row.location = InvCopyOut(InvResultText(i, 2));
		parts[i].row.lock_key = InvRowLockKey(parts[i].row.sku, parts[i].row.location);
		parts[i].qty = InvResultInt8(i, 3);
		parts[i].state = InvCopyOut(InvResultText(i, 4));
		parts[i].overdue = InvResultBool(i, 5);
		parts[i].part = (int) InvResultInt8(i, 6);
		order[i] = &parts[i];
		if (strcmp(parts[i].state, "held") == 0)
			held++;
		else if (settled == NULL || strcmp(parts[i].state, "expired") == 0)
			settled = parts[i].state;
		overdue |= parts[i].overdue || strcmp(parts[i].state, "expired") == 0;
	}
	out->sku = parts[0].row.sku;
	out->location = n == 1 ? parts[0].row.location : NULL;

	if (held == 0)
	{
		if (strcmp(settled, confirm ? "confirmed" : "released") == 0)
			out->status = INV_DUPLICATE;
		else if (strcmp(settled, "confirmed") == 0)
			out->status = INV_CONFLICT;
		else
			out->status = INV_EXPIRED;
		if (n == 1)
			InvReadAvailable(out);
		return;
	}

	/*
	 * A cold row expires its overdue holds as it is prepared, ours among
	 * them if it is overdue (SKIP LOCKED does not skip our own lock).
	 */
	qsort(order, n, sizeof(HoldPart *), CompareParts);
	for (int i = 0; i < n; i++)
		if (strcmp(order[i]->state, "held") == 0)
			(void) InvOpen(&order[i]->target, order[i]->row.sku, order[i]->row.location, 0);
	out->status = overdue ? INV_EXPIRED : INV_OK;
	out->has_available = n == 1;
	for (int i = 0; i < n; i++)
	{
		HoldPart   *p = &parts[i];

		if (strcmp(p->state, "held") != 0)
			continue;
		InvPrepare(&p->target);
		if (!overdue)
			out->available = Settle(key, p->part, &p->target, p->qty,
									confirm ? "confirmed" : "released");
		else if (p->target.hot || !p->overdue)
			out->available = Settle(key, p->part, &p->target, p->qty, "expired");
		else
			out->available = InvRowAvailable(&p->target.row);
	}
}

PG_FUNCTION_INFO_V1(confirm);

/* inventory.confirm(key): the held units are sold. */
Datum
confirm(PG_FUNCTION_ARGS)
{
	char	   *key;
	InvOutcome	out;

	InvCheckReady("confirm()");
	key = InvArgName(fcinfo, 0, "key");
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
	char	   *key;
	InvOutcome	out;

	InvCheckReady("release()");
	key = InvArgName(fcinfo, 0, "key");
	SPI_connect();
	ConfirmOrRelease(key, false, &out);
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
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
	int64		total;

	InvCheckReady("expire()");
	SPI_connect();
	total = InvExpirePass(INT64_MAX, false);
	SPI_finish();
	PG_RETURN_INT64(total);
}
