/*
 * refund.c
 *	  refund: return units of a sale (a deduct, a cart or an allocation of
 *	  one sku, or a reservation confirmed whole or in part) to the stock rows
 *	  they came from.
 *
 * Refunds of one sale may be partial; their sum never exceeds the sale's
 * quantity, nor what any one row sold.  A sale taken from several rows (an
 * allocation split over locations) is refunded to the rows it came from, the
 * last filled first.  The refundable rest is summed from the ledger under the
 * sale's stock row locks (all of them, in canonical order), so two refunds
 * racing for the last unit are serialised and the second sees the first.  A
 * sale of several skus cannot be refunded by its key: which sku is meant?
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "inventory.h"

/*
 * The sale behind a key: its call and, for a reservation, whether any of it
 * was sold (confirmed: whole, or in parts); NULL for other sales.
 */
static InvQuery Sale = {
	"SELECT l.call, (SELECT bool_or(r.state = 'confirmed') FROM inventory.reservation r "
	"                 WHERE r.key = l.key) "
	"FROM inventory.ledger l WHERE l.key = $1 AND l.call IS NOT NULL",
	1, {TEXTOID}
};

/*
 * The rows a sale took its units from, the last filled first, and what each
 * sold (a reservation's rows sold nothing until it was confirmed).
 */
static InvQuery SaleParts = {
	"SELECT sku, location, "
	"       COALESCE(-sum(on_hand_delta) FILTER (WHERE op IN ('deduct', 'confirm')), 0)::bigint "
	"FROM inventory.ledger "
	"WHERE key = $1 AND op IN ('deduct', 'reserve', 'confirm') AND sku IS NOT NULL "
	"GROUP BY sku, location ORDER BY max(id) DESC",
	1, {TEXTOID}
};

/* What earlier refunds of a sale returned to one of its rows. */
static InvQuery Refunded = {
	"SELECT COALESCE(sum(on_hand_delta), 0)::bigint FROM inventory.ledger "
	"WHERE ref = $1 AND op = 'refund' AND sku = $2 AND location = $3",
	3, {TEXTOID, TEXTOID, TEXTOID}
};

/* One row of a sale: where units came from, and what may go back. */
typedef struct SalePart
{
	InvRowRef	row;
	int64		sold;
	int64		back;			/* units this refund returns to it */
	InvTarget	target;
} SalePart;

/* Order parts canonically, for locking. */
static int
CompareParts(const void *a, const void *b)
{
	return InvRowOrder(&(*(SalePart *const *) a)->row, &(*(SalePart *const *) b)->row);
}

PG_FUNCTION_INFO_V1(refund);

/* inventory.refund(original_key, qty, key) */
Datum
refund(PG_FUNCTION_ARGS)
{
	char	   *original = InvArgName(fcinfo, 0, "original_key");
	int64		qty = InvArgQty(fcinfo, 1, "qty");
	char	   *key = InvArgName(fcinfo, 2, "key");
	Datum		values[3] = {CStringGetTextDatum(original)};
	StringInfoData args;
	InvOutcome	out;
	char	   *op;
	bool		reservation;
	bool		confirmed;
	SalePart   *parts;
	SalePart  **order;
	int			nparts;
	int64		left;
	bool		first = true;

	InvCheckReady("refund()");
	InvArgsBegin(&args);
	InvArgsText(&args, "original_key", original);
	InvArgsInt8(&args, "qty", qty);
	InvArgsEnd(&args);
	InvSetOutcome(&out, INV_OK, NULL, NULL);

	SPI_connect();
	/* a refund archived (and maybe its sale with it): applied long ago */
	if (InvKeyArchived(key))
	{
		out.status = INV_DUPLICATE;
		SPI_finish();
		return InvReturnOutcome(fcinfo, &out);
	}
	InvRunLatest(&Sale, values, NULL, 1);
	op = SPI_processed ? InvResultText(0, 1) : "";
	reservation = SPI_processed && !InvResultIsNull(0, 2);
	confirmed = reservation && InvResultBool(0, 2);
	if (strcmp(op, "deduct") != 0 && strcmp(op, "deduct_cart") != 0 &&
		strcmp(op, "deduct_any") != 0 && strcmp(op, "deduct_cart_any") != 0 &&
		strcmp(op, "reserve") != 0 && strcmp(op, "reserve_any") != 0 &&
		strcmp(op, "reserve_cart") != 0)
	{
		/*
		 * No sale has this key (unknown, or a restock, adjust, bill,
		 * tombstone, or archived since): a refund already recorded under
		 * key answers from it, as a refund of a sale still there would.
		 */
		out.status = InvKeyCheck(key, "refund", args.data) == INV_KEY_DUPLICATE ?
			INV_DUPLICATE : INV_NOT_FOUND;
		SPI_finish();
		return InvReturnOutcome(fcinfo, &out);
	}

	InvRunLatest(&SaleParts, values, NULL, 0);
	nparts = (int) SPI_processed;
	parts = palloc0(sizeof(SalePart) * Max(nparts, 1));
	order = palloc(sizeof(SalePart *) * Max(nparts, 1));
	for (int i = 0; i < nparts; i++)
	{
		parts[i].row.sku = InvCopyOut(InvResultText(i, 1));
		parts[i].row.location = InvCopyOut(InvResultText(i, 2));
		parts[i].row.lock_key = InvRowLockKey(parts[i].row.sku, parts[i].row.location);
		parts[i].sold = InvResultInt8(i, 3);
		order[i] = &parts[i];
	}
	for (int i = 1; i < nparts; i++)
		if (strcmp(parts[i].row.sku, parts[0].row.sku) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot refund a cart of several lines by its key"),
					 errdetail("Sale \"%s\" took units of several skus.", original),
					 errhint("Return the units with restock().")));
	if (nparts == 0)
		elog(ERROR, "inventory: sale \"%s\" has no rows", original);
	out.sku = parts[0].row.sku;
	out.location = nparts == 1 ? parts[0].row.location : NULL;

	/* the row locks serialise refunds of one sale, also on hot rows */
	qsort(order, nparts, sizeof(SalePart *), CompareParts);
	for (int i = 0; i < nparts; i++)
		(void) InvOpen(&order[i]->target, order[i]->row.sku, order[i]->row.location, INV_LOCK);
	if (InvKeyCheck(key, "refund", args.data) == INV_KEY_DUPLICATE)
	{
		out.status = INV_DUPLICATE;
		goto done;
	}
	if (reservation && !confirmed)
	{
		out.status = INV_CONFLICT;	/* a reservation that was never sold */
		goto done;
	}

	/* what each row may take back, the last filled first */
	left = qty;
	for (int i = 0; i < nparts; i++)
	{
		values[1] = CStringGetTextDatum(parts[i].row.sku);
		values[2] = CStringGetTextDatum(parts[i].row.location);
		InvRunLatest(&Refunded, values, NULL, 1);
		parts[i].back = Min(left, parts[i].sold - InvResultInt8(0, 1));
		left -= parts[i].back;
	}
	if (left > 0)
	{
		out.status = INV_INSUFFICIENT;
		goto done;
	}
	for (int i = 0; i < nparts; i++)
	{
		InvMovement m;
		InvRow		row;

		if (parts[i].back == 0)
			continue;
		InvPrepare(&parts[i].target);
		if (InvRowRead(parts[i].row.sku, parts[i].row.location, &row))
			(void) InvAddQty(row.on_hand, parts[i].back);
		InvMovementInit(&m, "refund", key, parts[i].back, 0);
		m.ref = original;
		m.call = first ? "refund" : NULL;
		m.args = args.data;
		out.has_available = true;
		out.available = InvMove(&m, &parts[i].target);
		if (!first)
			out.location = NULL;	/* returned to several rows */
		else
			out.location = parts[i].row.location;
		first = false;
	}
	if (out.location == NULL)
		out.has_available = false;
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);

done:
	if (out.location)
		InvReadAvailable(&out);
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
}
