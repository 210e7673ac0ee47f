/*
 * refund.c
 *	  refund: return units of a sale (a deduct, a one-line cart, or a
 *	  confirmed reservation) to its stock row.
 *
 * Refunds of one sale may be partial; their sum never exceeds the sale's
 * quantity.  The refundable rest is summed from the ledger under the sale's
 * stock row lock, so two refunds racing for the last unit are serialised and
 * the second sees the first.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "inventory.h"

/* The sale behind a key: its call, row, quantity, lines, reservation state. */
static InvQuery Sale = {
	"SELECT l.call, l.sku, l.location, "
	"       CASE l.call WHEN 'reserve' THEN l.reserved_delta ELSE -l.on_hand_delta END, "
	"       CASE l.call WHEN 'deduct_cart' THEN 1 + (SELECT count(*) FROM inventory.ledger c "
	"                                                 WHERE c.key = l.key AND c.call IS NULL "
	"                                                   AND c.op IN ('deduct', 'bill')) "
	"                   ELSE 1 END, "
	"       r.state "
	"FROM inventory.ledger l LEFT JOIN inventory.reservation r ON r.key = l.key "
	"WHERE l.key = $1 AND l.call IS NOT NULL",
	1, {TEXTOID}
};

static InvQuery Refunded = {
	"SELECT COALESCE(sum(on_hand_delta), 0)::bigint FROM inventory.ledger "
	"WHERE ref = $1 AND op = 'refund'",
	1, {TEXTOID}
};

PG_FUNCTION_INFO_V1(refund);

/* inventory.refund(original_key, qty, key) */
Datum
refund(PG_FUNCTION_ARGS)
{
	char	   *original = InvArgName(fcinfo, 0, "original_key");
	int64		qty = InvArgQty(fcinfo, 1, "qty");
	char	   *key = InvArgName(fcinfo, 2, "key");
	Datum		values[1] = {CStringGetTextDatum(original)};
	StringInfoData args;
	InvOutcome	out;
	char	   *op;
	char	   *sku;
	char	   *location;
	char	   *state;
	int64		sold;
	int64		refunded;
	InvRow		row;
	InvTarget	target;

	InvCheckReady();
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
	if (strcmp(op, "deduct") != 0 && strcmp(op, "deduct_cart") != 0 &&
		strcmp(op, "reserve") != 0)
	{
		/* no sale has this key (unknown, or a restock, adjust, bill, tombstone) */
		out.status = INV_NOT_FOUND;
		SPI_finish();
		return InvReturnOutcome(fcinfo, &out);
	}
	if (InvResultInt8(0, 5) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot refund a cart of several lines by its key"),
				 errdetail("Cart \"%s\" has %d lines.", original,
						   (int) InvResultInt8(0, 5)),
				 errhint("Return the units with restock().")));
	sku = InvCopyOut(InvResultText(0, 2));
	location = InvCopyOut(InvResultText(0, 3));
	sold = InvResultInt8(0, 4);
	state = InvResultText(0, 6);
	out.sku = sku;
	out.location = location;

	/* the row lock serialises refunds of one sale, also on a hot row */
	(void) InvOpen(&target, sku, location, INV_LOCK);
	if (InvKeyCheck(key, "refund", args.data) == INV_KEY_DUPLICATE)
		out.status = INV_DUPLICATE;
	else if (state != NULL && strcmp(state, "confirmed") != 0)
		out.status = INV_CONFLICT;	/* a reservation that was never sold */
	else
	{
		InvRunLatest(&Refunded, values, NULL, 1);
		refunded = InvResultInt8(0, 1);
		if (qty > sold - refunded)
			out.status = INV_INSUFFICIENT;
		else
		{
			InvMovement m;

			InvPrepare(&target);
			if (InvRowRead(sku, location, &row))
				(void) InvAddQty(row.on_hand, qty);
			InvMovementInit(&m, "refund", key, qty, 0);
			m.ref = original;
			m.call = "refund";
			m.args = args.data;
			out.has_available = true;
			out.available = InvMove(&m, &target);
		}
	}
	if (!out.has_available)
		InvReadAvailable(&out);
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
}
