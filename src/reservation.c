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

/* Is a part, locked by the caller, still held (as the latest commits say)? */
static InvQuery PartStillHeld = {
	"SELECT state = 'held' FROM inventory.reservation WHERE key = $1 AND part = $2",
	2, {TEXTOID, INT2OID}
};

/*
 * The next free part number of a reservation whose parts the caller has
 * locked, as the latest commits say: a step that committed while we waited
 * for the locks may have added a part the locking statement did not see.
 */
static InvQuery NextPart = {
	"SELECT COALESCE(max(part), -1)::bigint + 1 FROM inventory.reservation WHERE key = $1",
	1, {TEXTOID}
};

/* Does a reservation of this key exist, as the latest commits say? */
static InvQuery Exists = {
	"SELECT 1 FROM inventory.reservation WHERE key = $1 LIMIT 1",
	1, {TEXTOID}
};

static InvQuery SetState = {
	"UPDATE inventory.reservation SET state = $3 WHERE key = $1 AND part = $2",
	3, {TEXTOID, INT2OID, TEXTOID}
};

/* ... by a step, whose key the part keeps (1.2). */
static InvQuery SetStepState = {
	"UPDATE inventory.reservation SET state = $3, step = $4 WHERE key = $1 AND part = $2",
	4, {TEXTOID, INT2OID, TEXTOID, TEXTOID}
};

/*
 * The final state of the parts that no step settled: what the whole
 * confirm or release, or the expiry, made of the units steps left (one
 * state: each settles every part held at once); no row when steps settled
 * every unit (1.2).
 */
static InvQuery WholeState = {
	"SELECT state FROM inventory.reservation "
	"WHERE key = $1 AND state <> 'held' AND step IS NULL LIMIT 1",
	1, {TEXTOID}
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

/*
 * Under REPEATABLE READ and SERIALIZABLE, a reservation this transaction's
 * snapshot does not show, but which exists (made after the snapshot): a
 * serialization failure, not not_found (the retry sees it).
 */
static void
CheckNotAfterSnapshot(const char *key)
{
	Datum		values[1] = {CStringGetTextDatum(key)};

	if (!IsolationUsesXactSnapshot())
		return;
	InvRunLatest(&Exists, values, NULL, 1);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not settle reservation \"%s\": it was made after this transaction's snapshot", key),
				 errhint("Retry the transaction.")));
}

/* Is part of reservation key, which the caller has locked, still held? */
static bool
PartHeld(const char *key, int part)
{
	Datum		values[2] = {CStringGetTextDatum(key), Int16GetDatum((int16) part)};

	InvRun(&PartStillHeld, values, NULL, 1);
	return SPI_processed == 1 && InvResultBool(0, 1);
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

/*
 * Move a held part of a reservation, locked by the caller, to its final
 * state; step: the key of the step that settles it, or NULL.
 */
static int64
Settle(const char *key, int part, InvTarget *target, int64 qty, const char *state,
	   const char *step)
{
	Datum		values[4] = {CStringGetTextDatum(key), Int16GetDatum((int16) part),
		CStringGetTextDatum(state), step ? CStringGetTextDatum(step) : (Datum) 0};
	InvMovement m;

	InvRun(step ? &SetStepState : &SetState, values, NULL, 0);
	SettleMovement(&m, key, qty, state);
	return InvMove(&m, target);
}

/*
 * What a confirm or release asks for: the whole reservation (qty NULL), or
 * a step: qty units of one line, under the step's own key.
 */
typedef struct Ask
{
	const char *key;			/* the reservation */
	bool		confirm;
	const char *sku;			/* the line named, or NULL */
	bool		partial;		/* a step of qty units */
	int64		qty;
	const char *step;
} Ask;

/* One part of a reservation, as locked. */
typedef struct HoldPart
{
	InvRowRef	row;
	int64		qty;
	char	   *state;
	bool		overdue;
	int			part;
	bool		settle;			/* this call settles (some of) it */
	InvTarget	target;
} HoldPart;

/* Order parts canonically, for locking their stock rows. */
static int
CompareParts(const void *a, const void *b)
{
	return InvRowOrder(&(*(HoldPart *const *) a)->row, &(*(HoldPart *const *) b)->row);
}

/*
 * The parts of a reservation, locked (FOR UPDATE), in part order; *n gets
 * how many (none: the key holds no reservation).
 */
static HoldPart *
LockReservation(const char *key, int *n)
{
	Datum		values[1] = {CStringGetTextDatum(key)};
	HoldPart   *parts;

	InvRun(&LockParts, values, NULL, 0);
	*n = (int) SPI_processed;
	parts = palloc0(sizeof(HoldPart) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		parts[i].row.sku = InvCopyOut(InvResultText(i, 1));
		parts[i].row.location = InvCopyOut(InvResultText(i, 2));
		parts[i].row.lock_key = InvRowLockKey(parts[i].row.sku, parts[i].row.location);
		parts[i].qty = InvResultInt8(i, 3);
		parts[i].state = InvCopyOut(InvResultText(i, 4));
		parts[i].overdue = InvResultBool(i, 5);
		parts[i].part = (int) InvResultInt8(i, 6);
	}
	return parts;
}

/*
 * Open the stock rows of the parts to settle (settle set), in canonical
 * order: reservations are always locked before stock rows.
 */
static void
OpenParts(HoldPart *parts, int n)
{
	HoldPart  **order = palloc(sizeof(HoldPart *) * Max(n, 1));
	int			m = 0;

	for (int i = 0; i < n; i++)
		if (parts[i].settle)
			order[m++] = &parts[i];
	qsort(order, m, sizeof(HoldPart *), CompareParts);
	for (int i = 0; i < m; i++)
		(void) InvOpen(&order[i]->target, order[i]->row.sku, order[i]->row.location, 0);
}

/*
 * Are all the parts of one stock row (one part, or a part and those that
 * steps split off it)?  Then an outcome names the row and its units.
 */
static bool
OneRow(const HoldPart *parts, int n)
{
	for (int i = 1; i < n; i++)
		if (InvRowOrder(&parts[i].row, &parts[0].row) != 0)
			return false;
	return true;
}

/*
 * Move the stock rows of reservation parts just set to their final state
 * (state), journalled in part order (a refund gives back to the rows last
 * filled first, by their ledger rows' order): with no row hot, at READ
 * COMMITTED, their locks taken in canonical order and every movement written
 * at once (tables.c); else, those locks given back, each row opened (in
 * canonical order) and moved the general way.  Returns the units available
 * at the last part's row.
 */
static int64
MoveSettled(const char *key, HoldPart *parts, int n, const char *state)
{
	HoldPart  **order = palloc(sizeof(HoldPart *) * n);
	char	  **skus = palloc(sizeof(char *) * n);
	char	  **locations = palloc(sizeof(char *) * n);
	int64	   *need = palloc0(sizeof(int64) * n);
	int64	   *after = palloc(sizeof(int64) * n);
	InvMovement *m = palloc(sizeof(InvMovement) * n);
	bool		direct = !IsolationUsesXactSnapshot();
	int64		available = 0;

	for (int i = 0; i < n; i++)
	{
		order[i] = &parts[i];
		skus[i] = parts[i].row.sku;
		locations[i] = parts[i].row.location;
		SettleMovement(&m[i], key, parts[i].qty, state);
		direct &= !InvHotLoaded(skus[i], locations[i]);
	}
	qsort(order, n, sizeof(HoldPart *), CompareParts);
	if (direct)
	{
		for (int i = 0; i < n; i++)
			InvLockRow(order[i]->row.sku, order[i]->row.location, false);
		if (InvTablesMoves(m, skus, locations, need, n, NULL, after))
		{
			for (int i = 0; i < n; i++)
				InvNotifyLevel(skus[i], locations[i],
							   after[i] - m[i].on_hand_delta + m[i].reserved_delta, after[i]);
			return after[n - 1];
		}
		/* a row turned out hot: the general way opens it in share mode */
		for (int i = n - 1; i >= 0; i--)
			InvUnlockRow(order[i]->row.sku, order[i]->row.location, false);
	}
	OpenParts(parts, n);
	for (int i = 0; i < n; i++)
	{
		InvPrepare(&parts[i].target);
		available = InvMove(&m[i], &parts[i].target);
	}
	return available;
}

/*
 * The everyday confirm or release: a reservation whose parts are all held
 * and not due is settled directly (tables.c), or under REPEATABLE READ and
 * SERIALIZABLE a reserve's one hold by one statement (which may fail 40001);
 * then its stock rows are moved.  Returns false, having changed nothing,
 * for any other reservation (the general way decides).
 */
static bool
SettleFast(const Ask *ask, InvOutcome *out)
{
	const char *state = ask->confirm ? "confirmed" : "released";
	InvHeld    *held;
	HoldPart   *parts;
	int			n;

	if (!IsolationUsesXactSnapshot())
	{
		if ((n = InvTablesSettle(ask->key, state, ask->sku, &held)) == 0)
			return false;
	}
	else
	{
		Datum		values[2] = {CStringGetTextDatum(ask->key), CStringGetTextDatum(state)};

		if (ask->sku != NULL)
			return false;
		InvRun(&SettleHeld, values, NULL, 1);
		if (SPI_processed == 0)
			return false;
		n = 1;
		held = palloc(sizeof(InvHeld));
		held->sku = InvResultText(0, 1);
		held->location = InvResultText(0, 2);
		held->qty = InvResultInt8(0, 3);
	}
	parts = palloc0(sizeof(HoldPart) * n);
	for (int i = 0; i < n; i++)
	{
		parts[i].row.sku = InvCopyOut(held[i].sku);
		parts[i].row.location = InvCopyOut(held[i].location);
		parts[i].row.lock_key = InvRowLockKey(parts[i].row.sku, parts[i].row.location);
		parts[i].qty = held[i].qty;
		parts[i].settle = true;
	}
	out->sku = parts[0].row.sku;
	out->location = OneRow(parts, n) ? parts[0].row.location : NULL;
	out->has_available = OneRow(parts, n);
	out->available = MoveSettled(ask->key, parts, n, state);
	return true;
}

/*
 * A reservation past its expiry: every held part expires (a cold row's own
 * overdue holds are expired as it is prepared, ours among them if they are
 * in its batch: SKIP LOCKED does not skip our own lock; if not, here).
 * Returns the available units of the last part's row.
 */
static int64
ExpireParts(const char *key, HoldPart *parts, int n)
{
	int64		available = 0;

	for (int i = 0; i < n; i++)
		parts[i].settle = strcmp(parts[i].state, "held") == 0;
	OpenParts(parts, n);
	for (int i = 0; i < n; i++)
	{
		HoldPart   *p = &parts[i];

		if (!p->settle)
			continue;
		InvPrepare(&p->target);
		if (p->target.hot || !p->overdue || PartHeld(key, p->part))
			available = Settle(key, p->part, &p->target, p->qty, "expired", NULL);
		else
			available = InvRowAvailable(&p->target.row);
	}
	return available;
}

/*
 * The state of a reservation whose parts are all settled: confirmed if any
 * unit was sold, else expired if any part expired, else released.
 */
static const char *
Concluded(const HoldPart *parts, int n)
{
	const char *state = "released";

	for (int i = 0; i < n; i++)
	{
		if (strcmp(parts[i].state, "confirmed") == 0)
			return "confirmed";
		if (strcmp(parts[i].state, "expired") == 0)
			state = "expired";
	}
	return state;
}

/*
 * The whole-reservation confirm and release.  Locks the reservation (every
 * part of it), then opens its stock rows in canonical order, and moves what
 * is held to confirmed or released; a reservation past its expiry is
 * expired instead.  The parts of a reservation share their fate: if one is
 * due, all are expired.  A sku named must be one of its lines.
 */
static void
SettleWhole(const Ask *ask, InvOutcome *out)
{
	HoldPart   *parts;
	int			n;
	int			held = 0;
	bool		overdue = false;
	bool		named = ask->sku == NULL;

	if (SettleFast(ask, out))
		return;
	parts = LockReservation(ask->key, &n);
	if (n == 0)
	{
		char	   *op;
		char	   *args;
		bool		found = false;

		CheckNotAfterSnapshot(ask->key);

		/* a reservation archived with its key: settled long ago */
		if (InvKeyArchived(ask->key))
		{
			out->status = INV_DUPLICATE;
			return;
		}

		/*
		 * Unknown reservation.  A release records a tombstone; if the key
		 * was recorded meanwhile by a reserve that just committed, settle
		 * that reservation instead.
		 */
		if (!ask->confirm && !InvKeyTombstone(ask->key))
		{
			parts = LockReservation(ask->key, &n);
			found = n > 0;
		}
		if (!found)
		{
			out->status = INV_NOT_FOUND;
			if (ask->confirm && InvKeyLookup(ask->key, &op, &args) &&
				strcmp(op, "release") == 0 && args == NULL)
				out->status = INV_EXPIRED;
			return;
		}
	}

	for (int i = 0; i < n; i++)
	{
		if (strcmp(parts[i].state, "held") == 0)
			held++;
		overdue |= (parts[i].overdue && strcmp(parts[i].state, "held") == 0) ||
			strcmp(parts[i].state, "expired") == 0;
		named |= strcmp(parts[i].row.sku, ask->sku ? ask->sku : "") == 0;
	}
	if (!named)
	{
		out->status = INV_NOT_FOUND;	/* a sku that is none of its lines */
		return;
	}
	out->sku = parts[0].row.sku;
	out->location = OneRow(parts, n) ? parts[0].row.location : NULL;

	if (held == 0)
	{
		/*
		 * Answer as the call or the expiry that settled what steps left
		 * did (a retry of a whole release after a step sold units is a
		 * duplicate; a whole confirm after the rest expired is expired);
		 * when steps settled every unit, as the reservation's state says
		 */
		const char *settled = NULL;

		if (InvGetTables()->rs_step != InvalidAttrNumber)
		{
			Datum		values[1] = {CStringGetTextDatum(ask->key)};

			InvRun(&WholeState, values, NULL, 1);
			if (SPI_processed == 1)
				settled = InvResultText(0, 1);
		}
		if (settled == NULL)
			settled = Concluded(parts, n);

		if (strcmp(settled, ask->confirm ? "confirmed" : "released") == 0)
			out->status = INV_DUPLICATE;
		else if (strcmp(settled, "confirmed") == 0)
			out->status = INV_CONFLICT;
		else
			out->status = INV_EXPIRED;
		if (OneRow(parts, n))
			InvReadAvailable(out);
		return;
	}

	out->has_available = OneRow(parts, n);
	if (overdue)
	{
		out->status = INV_EXPIRED;
		out->available = ExpireParts(ask->key, parts, n);
		return;
	}
	out->status = INV_OK;
	for (int i = 0; i < n; i++)
		parts[i].settle = strcmp(parts[i].state, "held") == 0;
	OpenParts(parts, n);
	for (int i = 0; i < n; i++)
	{
		HoldPart   *p = &parts[i];

		if (!p->settle)
			continue;
		InvPrepare(&p->target);
		out->available = Settle(ask->key, p->part, &p->target, p->qty,
								ask->confirm ? "confirmed" : "released", NULL);
	}
}

/* A step's record: a call row that moves nothing, its arguments in ref. */
static InvQuery StepRecord = {
	"INSERT INTO inventory.ledger (op, key, call, ref) VALUES ($1, $2, $3, $4) "
	"ON CONFLICT (key) WHERE call IS NOT NULL DO NOTHING",
	4, {TEXTOID, TEXTOID, TEXTOID, TEXTOID}
};

/*
 * Split qty units of a held part off into a new part in a final state (the
 * held part keeps the rest): the reservation shows what each step settled.
 */
static InvQuery SplitPart = {
	"WITH o AS (UPDATE inventory.reservation SET qty = qty - $3 "
	"            WHERE key = $1 AND part = $2 RETURNING *) "
	"INSERT INTO inventory.reservation "
	"  (key, part, sku, location, qty, state, created_at, expires_at, ttl, step) "
	"SELECT key, $4, sku, location, $3, $5, created_at, expires_at, ttl, $6 FROM o",
	6, {TEXTOID, INT2OID, INT8OID, INT2OID, TEXTOID, TEXTOID}
};

/*
 * A partial confirm or release: qty units of one line (the sku named, or
 * the reservation's only sku) taken from its held parts in part order, sold
 * or given back, under the step's own key (a retry answers duplicate).  A
 * part settled whole moves to its final state; one settled in part keeps
 * the rest held, and the units settled become a part of their own.  More
 * than is held answers insufficient, with the units still held of the line.
 */
static void
SettleStep(const Ask *ask, InvOutcome *out)
{
	const char *state = ask->confirm ? "confirmed" : "released";
	const char *call = ask->confirm ? "confirm_part" : "release_part";
	StringInfoData args;
	HoldPart   *parts;
	int			n;
	int			next;
	int			touched = 0;
	int64		held = 0;
	int64		left = ask->qty;
	bool		overdue = false;
	bool		lapsed = false;
	const char *sku = ask->sku;
	InvKeyState step_key;

	parts = LockReservation(ask->key, &n);
	InvArgsBegin(&args);
	InvArgsText(&args, "reservation", ask->key);
	InvArgsText(&args, "sku", sku ? sku : "");
	InvArgsInt8(&args, "qty", ask->qty);
	InvArgsEnd(&args);
	step_key = InvKeyClassify(ask->step, call, args.data);
	if (step_key == INV_KEY_DUPLICATE)
	{
		out->status = INV_DUPLICATE;
		out->sku = sku;
		return;
	}
	if (n == 0)
	{
		/*
		 * No such reservation: not_found, even when the step's key was used
		 * for another one (inventory_proxy sends the retry of a step of a
		 * held cart across shards here first, and then to its line).
		 */
		CheckNotAfterSnapshot(ask->key);
		out->status = INV_NOT_FOUND;
		return;
	}
	if (step_key == INV_KEY_REUSED)
		(void) InvKeyCheck(ask->step, call, args.data);

	/* the line: the sku named, or the reservation's only one */
	for (int i = 0; i < n; i++)
	{
		if (sku == NULL)
			sku = parts[i].row.sku;
		else if (ask->sku == NULL && strcmp(sku, parts[i].row.sku) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("sku must be given: reservation \"%s\" holds several skus", ask->key),
					 errhint("Name the line to %s with sku => ...", ask->confirm ? "confirm" : "release")));
		overdue |= parts[i].overdue && strcmp(parts[i].state, "held") == 0;
	}
	out->sku = sku;
	for (int i = 0; i < n; i++)
		if (strcmp(parts[i].row.sku, sku) == 0)
		{
			touched++;
			if (strcmp(parts[i].state, "held") == 0)
				held += parts[i].qty;
			else if (strcmp(parts[i].state, "expired") == 0)
				lapsed = true;
		}
	if (touched == 0)
	{
		out->status = INV_NOT_FOUND;	/* a sku that is none of its lines */
		return;
	}
	if (overdue)
	{
		out->status = INV_EXPIRED;
		out->has_available = OneRow(parts, n);
		out->available = ExpireParts(ask->key, parts, n);
		return;
	}
	if (held < ask->qty)
	{
		/* nothing held any more because the hold ran out: too late */
		out->status = held == 0 && lapsed ? INV_EXPIRED : INV_INSUFFICIENT;
		out->has_available = true;
		out->available = held;	/* the units still held of the line */
		return;
	}

	/* the step's record first: a concurrent use of its key stops us here */
	{
		Datum		values[4] = {CStringGetTextDatum(ask->confirm ? "confirm" : "release"),
			CStringGetTextDatum(ask->step), CStringGetTextDatum(call),
		CStringGetTextDatum(args.data)};
		InvMovement record;

		InvRun(&StepRecord, values, NULL, 0);
		if (SPI_processed == 0)
			InvKeyTaken(ask->step, call, args.data);
		InvMovementInit(&record, "confirm", ask->step, 0, 0);
		record.call = call;
		InvKeyNotArchived(&record);
	}

	{
		Datum		values[1] = {CStringGetTextDatum(ask->key)};

		InvRun(&NextPart, values, NULL, 1);
		next = (int) InvResultInt8(0, 1);
	}
	touched = 0;
	for (int i = 0; i < n; i++)
	{
		parts[i].settle = strcmp(parts[i].row.sku, sku) == 0 &&
			strcmp(parts[i].state, "held") == 0 && left > 0;
		if (parts[i].settle)
			left -= Min(left, parts[i].qty);
	}
	OpenParts(parts, n);
	left = ask->qty;
	for (int i = 0; i < n && left > 0; i++)
	{
		HoldPart   *p = &parts[i];
		int64		take;

		if (!p->settle)
			continue;
		take = Min(left, p->qty);
		left -= take;
		InvPrepare(&p->target);
		if (take == p->qty)
			out->available = Settle(ask->key, p->part, &p->target, take, state, ask->step);
		else
		{
			Datum		values[6] = {CStringGetTextDatum(ask->key), Int16GetDatum((int16) p->part),
				Int64GetDatum(take), InvPartDatum(next++),
			CStringGetTextDatum(state), CStringGetTextDatum(ask->step)};
			InvMovement m;

			InvRun(&SplitPart, values, NULL, 0);
			SettleMovement(&m, ask->key, take, state);
			out->available = InvMove(&m, &p->target);
		}
		out->location = p->row.location;
		touched++;
	}
	out->status = INV_OK;
	out->has_available = touched == 1;
	if (touched > 1)
		out->location = NULL;
}

/*
 * confirm(key, qty, step, sku) and release(...): the arguments (1.1
 * declares only key), and the whole reservation or a step.
 */
static Datum
ConfirmOrRelease(FunctionCallInfo fcinfo, bool confirm)
{
	Ask			ask;
	InvOutcome	out;
	int			nargs = PG_NARGS();

	InvCheckReady(confirm ? "confirm()" : "release()");
	memset(&ask, 0, sizeof(ask));
	ask.confirm = confirm;
	ask.key = InvArgName(fcinfo, 0, "key");
	ask.partial = nargs > 1 && !PG_ARGISNULL(1);
	if (ask.partial)
		ask.qty = InvArgQty(fcinfo, 1, "qty");
	if (nargs > 2 && !PG_ARGISNULL(2))
		ask.step = InvArgName(fcinfo, 2, "step");
	if (nargs > 3 && !PG_ARGISNULL(3))
		ask.sku = InvArgName(fcinfo, 3, "sku");
	if (ask.partial && ask.step == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("step must be given with qty"),
				 errhint("A partial %s is idempotent by its own key: give every step a key (step => ...).",
						 confirm ? "confirm" : "release")));
	if (!ask.partial && ask.step != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("step is only for a partial %s, with qty", confirm ? "confirm" : "release"),
				 errhint("Without qty the whole reservation is settled, idempotent by its own key.")));

	InvSetOutcome(&out, INV_OK, NULL, NULL);
	SPI_connect();
	if (ask.partial)
		SettleStep(&ask, &out);
	else
		SettleWhole(&ask, &out);
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
}

PG_FUNCTION_INFO_V1(confirm);

/*
 * inventory.confirm(key, qty, step, sku): the held units are sold (all, or
 * qty of one line as a step).
 */
Datum
confirm(PG_FUNCTION_ARGS)
{
	return ConfirmOrRelease(fcinfo, true);
}

PG_FUNCTION_INFO_V1(release);

/*
 * inventory.release(key, qty, step, sku): the held units return to
 * available (all, or qty of one line as a step).
 */
Datum
release(PG_FUNCTION_ARGS)
{
	return ConfirmOrRelease(fcinfo, false);
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
