/*
 * report.c
 *	  reconcile: check the invariants of the data model against the tables.
 *
 * One row per breach, none when consistent:
 *	 - on_hand differs from the sum of the row's ledger on_hand deltas;
 *	 - reserved differs from the sum of the row's ledger reserved deltas;
 *	 - reserved differs from the units of the row's held reservations;
 *	 - a counter is out of range (negative, or reserved above on_hand);
 *	 - the ledger moves a row that does not exist.
 */
#include "postgres.h"

#include "funcapi.h"
#include "utils/tuplestore.h"

#include "inventory.h"

static InvQuery Breaches = {
	"WITH l AS (SELECT sku, location, sum(on_hand_delta) AS on_hand, "
	"                  sum(reserved_delta) AS reserved "
	"             FROM inventory.ledger GROUP BY sku, location), "
	"     h AS (SELECT sku, location, sum(qty) AS held FROM inventory.reservation "
	"            WHERE state = 'held' GROUP BY sku, location) "
	"SELECT s.sku, s.location, 'on_hand differs from ledger', "
	"       COALESCE(l.on_hand, 0)::bigint, s.on_hand "
	"  FROM inventory.stock s LEFT JOIN l ON l.sku = s.sku AND l.location = s.location "
	" WHERE s.on_hand <> COALESCE(l.on_hand, 0) "
	"UNION ALL "
	"SELECT s.sku, s.location, 'reserved differs from ledger', "
	"       COALESCE(l.reserved, 0)::bigint, s.reserved "
	"  FROM inventory.stock s LEFT JOIN l ON l.sku = s.sku AND l.location = s.location "
	" WHERE s.reserved <> COALESCE(l.reserved, 0) "
	"UNION ALL "
	"SELECT s.sku, s.location, 'reserved differs from held reservations', "
	"       COALESCE(h.held, 0)::bigint, s.reserved "
	"  FROM inventory.stock s LEFT JOIN h ON h.sku = s.sku AND h.location = s.location "
	" WHERE s.reserved <> COALESCE(h.held, 0) "
	"UNION ALL "
	"SELECT s.sku, s.location, 'counters out of range', s.on_hand, s.reserved "
	"  FROM inventory.stock s "
	" WHERE s.on_hand < 0 OR s.reserved < 0 OR s.reserved > s.on_hand "
	"UNION ALL "
	"SELECT l.sku, l.location, 'ledger moves a missing stock row', 0, l.on_hand::bigint "
	"  FROM l WHERE NOT EXISTS (SELECT FROM inventory.stock s "
	"                            WHERE s.sku = l.sku AND s.location = l.location) "
	"ORDER BY 1, 2, 3",
	0, {InvalidOid}
};

PG_FUNCTION_INFO_V1(reconcile);

/* inventory.reconcile(): one row per invariant breach. */
Datum
reconcile(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	InvRun(&Breaches, NULL, NULL, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		values[5];
		bool		nulls[5];

		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
