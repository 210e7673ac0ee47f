/*
 * admin.c
 *	  Admin calls: set_hot, merge (and the worker's merge pass), hot_counters,
 *	  worker_status.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "inventory.h"
#include "hot.h"

PG_FUNCTION_INFO_V1(set_hot);

/*
 * inventory.set_hot(sku, hot, location): route a row through the hot path,
 * or back, for good: the automatic rule leaves the row alone from then on
 * (hot NULL hands it back to the rule).  Making a row hot takes effect for
 * transactions that start after this one commits (its counter loads from
 * committed figures on first use).  Making it cold waits (for the row lock,
 * exclusively) until no transaction uses its counter, unloads the counter
 * and merges the queue.
 */
Datum
set_hot(PG_FUNCTION_ARGS)
{
	char	   *sku = InvArgName(fcinfo, 0, "sku");
	char	   *location = InvArgName(fcinfo, 2, "location");
	InvOutcome	out;
	bool		found;

	InvCheckReady("set_hot()");
	InvSetOutcome(&out, INV_OK, sku, location);
	SPI_connect();
	if (PG_ARGISNULL(1))
		found = InvUnpinHot(sku, location);
	else
		found = InvSetHot(sku, location, PG_GETARG_BOOL(1), true);
	if (!found)
		out.status = INV_NOT_FOUND;
	InvReadAvailable(&out);
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
}

PG_FUNCTION_INFO_V1(merge);

/* inventory.merge(): merge every queue now; returns movements merged. */
Datum
merge(PG_FUNCTION_ARGS)
{
	InvMergeResult result;

	InvCheckReady("merge()");
	SPI_connect();
	InvMergePass(false, &result);
	SPI_finish();
	PG_RETURN_INT64(result.moved);
}

PG_FUNCTION_INFO_V1(archive);

/*
 * inventory.archive(before): fold the ledger rows older than before into one
 * checkpoint per stock row, keep the keys of the calls they recorded as
 * digests, and drop the concluded reservations older than before; in the
 * caller's transaction.  Returns how many ledger rows were folded.
 */
Datum
archive(PG_FUNCTION_ARGS)
{
	TimestampTz before;
	int64		total = 0;
	int64		folded;
	int64		dropped;

	InvCheckReady("archive()");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("before must not be null")));
	before = PG_GETARG_TIMESTAMPTZ(0);
	if (before > GetCurrentStatementStartTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("before must not be in the future"),
				 errdetail("The cutoff given was %s.", timestamptz_to_str(before)),
				 errhint("History is archived up to a moment that has passed.")));
	SPI_connect();
	do
	{
		CHECK_FOR_INTERRUPTS();
		folded = InvArchiveBatch(before, INV_ARCHIVE_BATCH, &dropped);
		total += folded;
	} while (folded > 0 || dropped > 0);
	SPI_finish();
	PG_RETURN_INT64(total);
}

PG_FUNCTION_INFO_V1(hot_counters);

/* inventory.hot_counters(): the escrow counters of this database's rows. */
Datum
hot_counters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid;

	InvCheckPreloaded();
	relid = InvStockRelid();
	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < InvHotRows; i++)
	{
		HotEntry   *entry = &InvHotSlots[i];
		HotEntry	copy;
		Datum		values[7];
		bool		nulls[7] = {0};

		SpinLockAcquire(&entry->mutex);
		copy = *entry;
		SpinLockRelease(&entry->mutex);

		/* free slots, rows of other databases or of a dropped inventory.stock */
		if (copy.generation == 0 || copy.key.dbid != MyDatabaseId ||
			copy.stock_relid != relid)
			continue;
		values[0] = CStringGetTextDatum(copy.key.sku);
		values[1] = CStringGetTextDatum(copy.key.location);
		values[2] = BoolGetDatum(copy.loaded);
		values[3] = Int64GetDatum(copy.available);
		nulls[3] = !copy.loaded;	/* an unloaded counter holds no figure */
		values[4] = Int32GetDatum(copy.uses);
		values[5] = Int64GetDatum(copy.takes);
		values[6] = Int64GetDatum(copy.refusals);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(worker_status);

/*
 * The age of the oldest held reservation past its expiry, and the ledger
 * rows older than inventory.history_retention (NULL when it is not set):
 * what a monitor watches to see that expiry and archiving keep up.
 */
static InvQuery Backlog = {
	"SELECT (SELECT statement_timestamp() - min(expires_at) FROM inventory.reservation "
	"         WHERE state = 'held' AND expires_at <= statement_timestamp()), "
	"       CASE WHEN $1 > 0 THEN (SELECT count(*) FROM inventory.ledger "
	"                               WHERE at < statement_timestamp() - $1 * interval '1 second' "
	"                                 AND op <> 'checkpoint') END",
	1, {INT4OID}
};

/* inventory.worker_status(): what the background worker has done. */
Datum
worker_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	InvWorkerStats s;
	Datum		values[21];
	bool		nulls[21] = {0};
	char	   *database;
	int64		batches;
	int64		requests;
	int64		largest;

	InvCheckPreloaded();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "inventory: return type must be a row type");
	memset(&s, 0, sizeof(s));
	SpinLockAcquire(&InvState->mutex);
	for (int i = 0; i < INV_MAX_DATABASES; i++)
		if (InvState->workers[i].dbid == MyDatabaseId)
			s = InvState->workers[i];
	SpinLockRelease(&InvState->mutex);

	values[0] = Int32GetDatum(s.pid);
	nulls[0] = s.pid == 0;
	values[1] = TimestampTzGetDatum(s.started_at);
	nulls[1] = s.started_at == 0;
	values[2] = TimestampTzGetDatum(s.last_merge_at);
	nulls[2] = s.last_merge_at == 0;
	values[3] = Int64GetDatum(s.merge_passes);
	values[4] = Int64GetDatum(s.rows_merged);
	values[5] = Int64GetDatum(s.movements_merged);
	values[6] = TimestampTzGetDatum(s.last_expire_at);
	nulls[6] = s.last_expire_at == 0;
	values[7] = Int64GetDatum(s.expire_passes);
	values[8] = Int64GetDatum(s.expired);
	values[9] = Int64GetDatum(s.errors);
	values[10] = CStringGetTextDatum(s.last_error);
	nulls[10] = s.last_error[0] == '\0';
	InvMergedStats(&batches, &requests, &largest);
	values[11] = Int64GetDatum(batches);
	values[12] = Int64GetDatum(requests);
	values[13] = Int64GetDatum(largest);
	database = OidIsValid(s.dbid) ? get_database_name(s.dbid) : NULL;
	values[14] = database ? DirectFunctionCall1(namein, CStringGetDatum(database)) : (Datum) 0;
	nulls[14] = database == NULL;
	values[15] = TimestampTzGetDatum(s.last_archive_at);
	nulls[15] = s.last_archive_at == 0;
	values[16] = Int64GetDatum(s.archived);
	values[17] = Int64GetDatum(s.promoted);
	values[18] = Int64GetDatum(s.demoted);

	/* 1.2 declares the backlog too (the library serves 1.1 as well) */
	nulls[19] = nulls[20] = true;
	if (tupdesc->natts > 19 && InvSchemaIsCurrent())
	{
		Datum		retention = Int32GetDatum(InvHistoryRetention);

		SPI_connect();
		InvRun(&Backlog, &retention, NULL, 1);
		nulls[19] = InvResultIsNull(0, 1);
		if (!nulls[19])
			values[19] = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 1, &nulls[19]),
										   false, sizeof(Interval));
		nulls[20] = InvResultIsNull(0, 2);
		if (!nulls[20])
			values[20] = Int64GetDatum(InvResultInt8(0, 2));
		SPI_finish();
	}

	/* the figures are this database's worker's; say if it has none */
	if (s.pid == 0)
		ereport(WARNING,
				(errmsg("no inventory worker serves this database now"),
				 errdetail("Hot-row queues are merged only by merge(), reservations expire only lazily or by expire(), and merged mode is off here."),
				 errhint("The launcher (the worker of inventory.database) starts one at the first call in a database where the extension is installed, unless inventory.serve_all_databases is off or no background worker slot is free (see max_worker_processes).")));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}
