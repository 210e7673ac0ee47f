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

#include "catalog/namespace.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "inventory.h"

static OverrideSearchPath SafeSearchPath = {NIL, true, false, 0};

/*
 * Run a statement with the safe search path, preparing it on first use.
 * Returns the SPI result code; any SPI failure is an internal error.
 */
int
InvRun(InvQuery *query, Datum *values, const char *nulls, long tcount)
{
	int			rc;

	/* callers copy what they need from a result before the next statement */
	if (SPI_tuptable != NULL)
		SPI_freetuptable(SPI_tuptable);
	PushOverrideSearchPath(&SafeSearchPath);
	if (query->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(query->sql, query->nargs, query->argtypes);

		if (plan == NULL)
			elog(ERROR, "inventory: SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "inventory: SPI_keepplan failed");
		query->plan = plan;
	}
	rc = SPI_execute_plan(query->plan, values, nulls, false, tcount);
	PopOverrideSearchPath();

	if (rc < 0)
		elog(ERROR, "inventory: SPI_execute_plan failed: %s",
			 SPI_result_code_string(rc));
	return rc;
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
