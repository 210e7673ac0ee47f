/*
 * stats.c
 *	  Counts of the answers the calls gave, per database, call and status:
 *	  the view inventory.stats, reset by inventory.stats_reset().
 *
 * These are what a dashboard plots: sales (deduct ok), sold out
 * (insufficient), retries (duplicate), contention (busy).  Each count is an
 * atomic counter in shared memory, in the database's slot of
 * worker_status() (databases.c gives a database its slot at its first
 * call), so counting costs one atomic addition per call and no table is
 * written.  The counts start at zero when the server starts, when
 * stats_reset() runs, and when a slot passes to another database; a
 * database without a slot (more than INV_MAX_DATABASES of them) is not
 * counted.  Errors are not answers and are not counted (the server's log
 * and pg_stat_database have them).
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "inventory.h"
#include "hot.h"

/* The calls counted, in the order of InvShared.counts. */
static const char *const Calls[INV_STATS_CALLS] = {
	"restock", "adjust", "deduct", "deduct_cart", "reserve", "reserve_cart",
	"confirm", "release", "refund", "deduct_any", "reserve_any",
	"deduct_cart_any", "apply_bills", "set_hot"
};

/* The statuses, in the same way. */
static const char *const Statuses[INV_STATS_STATUSES] = {
	INV_OK, INV_DUPLICATE, INV_INSUFFICIENT, INV_NOT_FOUND, INV_EXPIRED,
	INV_CONFLICT, INV_BUSY
};

/* A call's index among the counted calls, or -1. */
int
InvStatsCall(const char *call)
{
	for (int i = 0; i < INV_STATS_CALLS; i++)
		if (Calls[i] != NULL && strcmp(Calls[i], call) == 0)
			return i;
	return -1;
}

/* Count an answer of a call (InvStatsCall's index) in this database. */
void
InvStatsCount(int call, const char *status)
{
	int			slot = InvDatabaseSlot();

	if (call < 0 || slot < 0)
		return;
	for (int s = 0; s < INV_STATS_STATUSES; s++)
		if (strcmp(Statuses[s], status) == 0)
		{
			pg_atomic_fetch_add_u64(&InvState->counts[slot][call][s], 1);
			return;
		}
}

/* Zero the counts of a slot (given to another database, or reset). */
void
InvStatsClear(int slot)
{
	for (int c = 0; c < INV_STATS_CALLS; c++)
		for (int s = 0; s < INV_STATS_STATUSES; s++)
			pg_atomic_write_u64(&InvState->counts[slot][c][s], 0);
}

PG_FUNCTION_INFO_V1(call_counts);

/*
 * inventory.call_counts(): this database's answers so far, a row per call
 * and status answered at least once (the view inventory.stats).
 */
Datum
call_counts(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			slot;

	InvCheckPreloaded();
	slot = InvDatabaseSlot();
	InitMaterializedSRF(fcinfo, 0);
	if (slot < 0)
		return (Datum) 0;
	for (int c = 0; c < INV_STATS_CALLS; c++)
		for (int s = 0; s < INV_STATS_STATUSES; s++)
		{
			uint64		n = pg_atomic_read_u64(&InvState->counts[slot][c][s]);
			Datum		values[3];
			bool		nulls[3] = {false, false, false};

			if (n == 0 || Calls[c] == NULL)
				continue;
			values[0] = CStringGetTextDatum(Calls[c]);
			values[1] = CStringGetTextDatum(Statuses[s]);
			values[2] = Int64GetDatum((int64) n);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(stats_reset);

/* inventory.stats_reset(): this database's counts start again from zero. */
Datum
stats_reset(PG_FUNCTION_ARGS)
{
	int			slot;

	InvCheckPreloaded();
	slot = InvDatabaseSlot();
	if (slot >= 0)
		InvStatsClear(slot);
	PG_RETURN_VOID();
}
