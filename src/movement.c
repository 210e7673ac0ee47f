/*
 * movement.c
 *	  Reading a stock row and moving its counters.
 *
 * A movement changes on_hand and/or reserved of one stock row and appends
 * exactly one ledger row describing the change, in one statement, so the
 * ledger and the counters can never disagree.  Callers hold the row's
 * advisory lock (rowlock.c) and have recorded the call's key (keys.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "inventory.h"

static InvQuery RowRead = {
	"SELECT s.on_hand, s.reserved, s.hot, "
	"  (SELECT COALESCE(sum(r.qty), 0)::bigint FROM inventory.reservation r "
	"    WHERE r.sku = s.sku AND r.location = s.location AND r.state = 'held' "
	"      AND r.expires_at <= statement_timestamp()) "
	"FROM inventory.stock s WHERE s.sku = $1 AND s.location = $2",
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

/* Read a stock row without changing anything; false if it does not exist. */
bool
InvRowRead(const char *sku, const char *location, InvRow *row)
{
	Datum		values[2] = {CStringGetTextDatum(sku), CStringGetTextDatum(location)};

	InvRun(&RowRead, values, NULL, 1);
	if (SPI_processed == 0)
		return false;
	row->on_hand = InvResultInt8(0, 1);
	row->reserved = InvResultInt8(0, 2);
	row->hot = InvResultBool(0, 3);
	row->overdue = InvResultInt8(0, 4);
	return true;
}

/*
 * Read a stock row before writing it, under its lock: held reservations past
 * their expiry are expired first, so reserved counts only live holds.  One
 * that a concurrent confirm or release has locked is skipped and still
 * counted as held: its owner settles it once it gets the row.
 */
bool
InvRowPrepare(const char *sku, const char *location, InvRow *row)
{
	if (!InvRowRead(sku, location, row))
		return false;
	if (row->overdue > 0)
		row->reserved -= InvExpireOverdue(sku, location, INT64_MAX, NULL);
	row->overdue = 0;
	return true;
}

/* Units a row can sell now: a held reservation past expiry is not counted. */
int64
InvRowAvailable(const InvRow *row)
{
	return row->on_hand - row->reserved + row->overdue;
}

/* Create an empty stock row if it does not exist. */
void
InvRowCreate(const char *sku, const char *location)
{
	Datum		values[2] = {CStringGetTextDatum(sku), CStringGetTextDatum(location)};

	InvRun(&RowCreate, values, NULL, 0);
}

/*
 * Apply a movement to a stock row and journal it.  Returns the row's
 * available units afterwards.
 */
int64
InvMove(const char *op, const char *key, const char *sku, const char *location,
		int64 on_hand_delta, int64 reserved_delta, const char *ref)
{
	Datum		values[7] = {
		CStringGetTextDatum(op), CStringGetTextDatum(key),
		CStringGetTextDatum(sku), CStringGetTextDatum(location),
		Int64GetDatum(on_hand_delta), Int64GetDatum(reserved_delta),
		ref ? CStringGetTextDatum(ref) : (Datum) 0
	};
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ref ? ' ' : 'n'};

	InvRun(&Move, values, nulls, 0);
	if (SPI_processed != 1)
		elog(ERROR, "inventory: stock row (%s, %s) vanished during %s",
			 sku, location, op);
	return InvResultInt8(0, 1);
}

/* Fill in an outcome's available figure from the row as it is now. */
void
InvReadAvailable(InvOutcome *out)
{
	InvRow		row;

	if (out->sku == NULL || out->location == NULL ||
		!InvRowRead(out->sku, out->location, &row))
		return;
	out->has_available = true;
	out->available = InvRowAvailable(&row);
}
