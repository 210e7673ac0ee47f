/*
 * query.c
 *	  Prepared SPI statements that never see the caller's search_path.
 *
 * Every statement the extension runs is written with schema-qualified table
 * names, and is prepared once per backend and kept (SPI_keepplan).  Names it
 * does not qualify (functions, operators, types) must still never resolve
 * through the caller's search_path: a caller who puts a schema with its own
 * now() or "=" in front must not reach it, least of all from a SECURITY
 * DEFINER function.  So each statement is prepared and executed with an
 * override search path that holds pg_catalog only (no temp schema).  The plan
 * cache remembers the path a plan was made with and sees it again on every
 * execution, so plans are never rebuilt because a caller's path differs.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "nodes/parsenodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "inventory.h"

static OverrideSearchPath SafeSearchPath = {NIL, true, false, 0};

/* Prepare a statement on first use, with the safe search path. */
static SPIPlanPtr
Prepared(InvQuery *query)
{
	if (query->plan == NULL)
	{
		/*
		 * Always the generic plan: every statement here finds its rows by
		 * key, so planning it again for each call's values (a custom plan,
		 * which the plan cache prefers when an array's length changes the
		 * estimates) would only cost time.
		 */
		SPIPlanPtr	plan = SPI_prepare_cursor(query->sql, query->nargs, query->argtypes,
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "inventory: SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "inventory: SPI_keepplan failed");
		query->plan = plan;
	}
	return query->plan;
}

/*
 * Run a statement with the safe search path, preparing it on first use;
 * with latest, it reads with a fresh snapshot even where the transaction's
 * isolation level would use an older one.  Returns the SPI result code; any
 * SPI failure is an internal error.
 */
static int
Run(InvQuery *query, Datum *values, const char *nulls, long tcount, bool latest)
{
	int			rc;

	/* callers copy what they need from a result before the next statement */
	if (SPI_tuptable != NULL)
		SPI_freetuptable(SPI_tuptable);
	PushOverrideSearchPath(&SafeSearchPath);
	if (latest)
		rc = SPI_execute_snapshot(Prepared(query), values, nulls,
								  GetLatestSnapshot(), InvalidSnapshot,
								  false, false, tcount);
	else
		rc = SPI_execute_plan(Prepared(query), values, nulls, false, tcount);
	PopOverrideSearchPath();

	if (rc < 0)
		elog(ERROR, "inventory: SPI_execute_plan failed: %s",
			 SPI_result_code_string(rc));
	return rc;
}

/* Run a statement (see Run). */
int
InvRun(InvQuery *query, Datum *values, const char *nulls, long tcount)
{
	return Run(query, values, nulls, tcount, false);
}

/*
 * Run a statement that reads with the latest snapshot.  A call decides from
 * a row it holds locked, so it must see every commit made before it got the
 * lock: under READ COMMITTED each statement's snapshot does, but under
 * REPEATABLE READ and SERIALIZABLE the transaction's snapshot may be older
 * than the lock (and a hot row's counter loaded from it would promise units
 * already sold).  Writes still use the transaction's snapshot, so a stale
 * one still fails with a serialization error where PostgreSQL would raise it.
 */
int
InvRunLatest(InvQuery *query, Datum *values, const char *nulls, long tcount)
{
	return Run(query, values, nulls, tcount, true);
}

/* Fetch a column of the last result as a Datum. */
static Datum
ResultDatum(int row, int col, bool *isnull)
{
	if (SPI_tuptable == NULL || (uint64) row >= SPI_processed)
		elog(ERROR, "inventory: result row %d out of range", row);
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
						 col, isnull);
}

/* Is a column of the last result NULL? */
bool
InvResultIsNull(int row, int col)
{
	bool		isnull;

	ResultDatum(row, col, &isnull);
	return isnull;
}

/* A bigint column of the last result; NULL reads as 0. */
int64
InvResultInt8(int row, int col)
{
	bool		isnull;
	Datum		d = ResultDatum(row, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/* A boolean column of the last result; NULL reads as false. */
bool
InvResultBool(int row, int col)
{
	bool		isnull;
	Datum		d = ResultDatum(row, col, &isnull);

	return isnull ? false : DatumGetBool(d);
}

/* A text column of the last result, as a C string in the SPI context. */
char *
InvResultText(int row, int col)
{
	bool		isnull;
	Datum		d = ResultDatum(row, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Run fn(arg) in a subtransaction of its own, so that its failure undoes
 * only its own work: on an error the subtransaction is rolled back and the
 * error's message, copied into the caller's memory context, is returned;
 * NULL when fn succeeded.  Used where one bad row must not stop the others.
 */
char *
InvTryInSubxact(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	char	   *volatile message = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		message = pstrdup(edata->message ? edata->message : "");
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return message;
}

/* A text[] of C strings (NULL ones are NULL elements). */
Datum
InvTextArray(char **values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};

	for (int i = 0; i < n; i++)
	{
		nulls[i] = values[i] == NULL;
		d[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(values[i]);
	}
	return PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, TEXTOID,
											  -1, false, TYPALIGN_INT));
}

/* A bigint[]. */
Datum
InvInt8Array(int64 *values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(values[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, true, TYPALIGN_DOUBLE));
}
