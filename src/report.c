/*
 * report.c
 *	  reconcile: check the invariants of the data model against the tables,
 *	  and the hot rows' escrow counters against both.
 *
 * One row per breach, none when consistent.  A row's effective counters are
 * its stock row plus its queued (unmerged) movements:
 *	 - on_hand differs from the sum of the row's ledger on_hand deltas;
 *	 - reserved differs from the sum of the row's ledger reserved deltas;
 *	 - reserved differs from the units of the row's held reservations;
 *	 - a counter is out of range (negative, or reserved above on_hand);
 *	 - the ledger or the queue moves a row that does not exist;
 *	 - an ordinary row notes its next expiry (stock.next_expiry) later than a
 *	   held reservation's, so writers would not see that hold fall due;
 *	 - a loaded escrow counter differs from on_hand - reserved.  Counters are
 *	   compared only while quiescent (no transaction using the counter, and
 *	   no change to it while the tables were read), since a running
 *	   transaction legitimately holds units the tables do not show yet.
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "inventory.h"
#include "hot.h"

static InvQuery Breaches = {
	"WITH l AS (SELECT sku, location, sum(on_hand_delta) AS on_hand, "
	"                  sum(reserved_delta) AS reserved "
	"             FROM inventory.ledger WHERE sku IS NOT NULL GROUP BY sku, location), "
	"     p AS (SELECT sku, location, sum(on_hand_delta) AS on_hand, "
	"                  sum(reserved_delta) AS reserved "
	"             FROM inventory.pending GROUP BY sku, location), "
	"     h AS (SELECT sku, location, sum(qty) AS held, min(expires_at) AS next_expiry "
	"             FROM inventory.reservation "
	"            WHERE state = 'held' GROUP BY sku, location), "
	"     s AS (SELECT s.sku, s.location, "
	"                  s.on_hand + COALESCE(p.on_hand, 0) AS on_hand, "
	"                  s.reserved + COALESCE(p.reserved, 0) AS reserved "
	"             FROM inventory.stock s LEFT JOIN p "
	"               ON p.sku = s.sku AND p.location = s.location) "
	"SELECT s.sku, s.location, 'on_hand differs from ledger', "
	"       COALESCE(l.on_hand, 0)::bigint, s.on_hand::bigint "
	"  FROM s LEFT JOIN l ON l.sku = s.sku AND l.location = s.location "
	" WHERE s.on_hand <> COALESCE(l.on_hand, 0) "
	"UNION ALL "
	"SELECT s.sku, s.location, 'reserved differs from ledger', "
	"       COALESCE(l.reserved, 0)::bigint, s.reserved::bigint "
	"  FROM s LEFT JOIN l ON l.sku = s.sku AND l.location = s.location "
	" WHERE s.reserved <> COALESCE(l.reserved, 0) "
	"UNION ALL "
	"SELECT s.sku, s.location, 'reserved differs from held reservations', "
	"       COALESCE(h.held, 0)::bigint, s.reserved::bigint "
	"  FROM s LEFT JOIN h ON h.sku = s.sku AND h.location = s.location "
	" WHERE s.reserved <> COALESCE(h.held, 0) "
	"UNION ALL "
	"SELECT s.sku, s.location, 'counters out of range', s.on_hand::bigint, s.reserved::bigint "
	"  FROM s WHERE s.on_hand < 0 OR s.reserved < 0 OR s.reserved > s.on_hand "
	"UNION ALL "
	"SELECT l.sku, l.location, 'ledger moves a missing stock row', 0, l.on_hand::bigint "
	"  FROM l WHERE NOT EXISTS (SELECT FROM inventory.stock s "
	"                            WHERE s.sku = l.sku AND s.location = l.location) "
	"UNION ALL "
	"SELECT p.sku, p.location, 'queue moves a missing stock row', 0, p.on_hand::bigint "
	"  FROM p WHERE NOT EXISTS (SELECT FROM inventory.stock s "
	"                            WHERE s.sku = p.sku AND s.location = p.location) "
	"UNION ALL "
	"SELECT s.sku, s.location, 'next expiry noted after a held reservation''s', "
	"       extract(epoch FROM h.next_expiry)::bigint, "
	"       CASE WHEN isfinite(s.next_expiry) THEN extract(epoch FROM s.next_expiry)::bigint END "
	"  FROM inventory.stock s JOIN h ON h.sku = s.sku AND h.location = s.location "
	" WHERE NOT s.hot AND s.next_expiry > h.next_expiry "
	"   AND NOT EXISTS (SELECT FROM inventory.pending q "
	"                    WHERE q.sku = s.sku AND q.location = s.location) "
	"ORDER BY 1, 2, 3",
	0, {InvalidOid}
};

/* A counter's state, read under its spinlock. */
typedef struct CounterState
{
	bool		loaded;			/* and still the row's */
	int64		available;
	int			uses;
	uint64		changes;
} CounterState;

/* Read a counter's state, if its slot is still of that generation. */
static void
ReadCounter(HotEntry *entry, uint64 generation, CounterState *state)
{
	Oid			relid = InvStockRelid();	/* no catalog lookup under a spinlock */

	SpinLockAcquire(&entry->mutex);
	state->loaded = entry->generation == generation && entry->loaded &&
		entry->stock_relid == relid;
	state->available = entry->available;
	state->uses = entry->uses;
	state->changes = entry->changes;
	SpinLockRelease(&entry->mutex);
}

/* Compare every quiescent loaded counter of this database with the tables. */
static void
CheckCounters(ReturnSetInfo *rsinfo)
{
	for (int i = 0; i < InvHotRows; i++)
	{
		HotEntry   *entry = &InvHotSlots[i];
		uint64		generation;
		HotKey		key;
		CounterState before;
		CounterState after;
		InvRow		row;
		int64		expected;

		SpinLockAcquire(&entry->mutex);
		generation = entry->generation;
		key = entry->key;
		SpinLockRelease(&entry->mutex);
		if (generation == 0 || key.dbid != MyDatabaseId)
			continue;
		ReadCounter(entry, generation, &before);
		if (!before.loaded || before.uses > 0 ||
			!InvRowRead(key.sku, key.location, &row))
			continue;
		ReadCounter(entry, generation, &after);
		if (!after.loaded || after.changes != before.changes || after.uses > 0)
			continue;
		expected = row.on_hand - row.reserved;
		if (expected != after.available)
		{
			Datum		values[5] = {
				CStringGetTextDatum(key.sku),
				CStringGetTextDatum(key.location),
				CStringGetTextDatum("escrow counter differs from tables"),
				Int64GetDatum(expected),
				Int64GetDatum(after.available)
			};
			bool		nulls[5] = {0};

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
}

PG_FUNCTION_INFO_V1(reconcile);

/* inventory.reconcile(): one row per invariant breach. */
Datum
reconcile(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InvCheckReady(NULL);
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
	CheckCounters(rsinfo);
	SPI_finish();
	return (Datum) 0;
}
