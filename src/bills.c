/*
 * bills.c
 *	  apply_bills: many documents at once, simulated in memory, written once.
 *
 * Warehouses post documents in bulk (delivery notes, receipts), each of
 * several lines, many for the same promoted SKU.  One document at a time,
 * each line takes the row's lock and writes the row.  Here:
 *
 *	 1. The whole JSON is parsed and checked first; bad input (unknown members
 *		included) is an error, whose context names the bill and line, and
 *		nothing is applied.  Lines of one row within a bill are summed.
 *	 2. Every touched row is opened once, in the canonical (lock key) order:
 *		ordinary rows are locked for the rest of the transaction, so nobody
 *		else can change them while we decide; hot rows go through their
 *		escrow counters, which concurrent deducts share safely.
 *	 3. The bills are simulated in order in memory, each all or nothing
 *		against the stock the bills before it left; a bill whose key was
 *		already applied is "duplicate".  Units a bill takes from a hot row are
 *		taken from its counter at once, so a concurrent deduct can never
 *		sell them too.
 *	 4. The result is written with a handful of statements whatever the
 *		number of bills: the keys, the ledger rows (one per bill and row) and
 *		the queue rows of hot rows as multi-row inserts, and one UPDATE that
 *		changes each ordinary row once.
 *
 * Each bill is recorded under its key (op "bill") like any call, so replaying
 * a bill, alone or in another batch, is a duplicate.  If a concurrent call
 * records one of our keys while we work, the whole call fails with a
 * serialization failure (40001) and can be retried as it is.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/tuplestore.h"

#include "inventory.h"

#include "hot.h"

/* A stock row touched by the call, and its simulated state. */
typedef struct BillRow
{
	char	   *sku;
	char	   *location;
	int64		lock_key;
	InvTarget	target;
	int64		available;		/* cold: units available, simulated */
	int64		on_hand;		/* simulated, for the overflow check */
	int64		applied;		/* net change of the applied bills */
	int64		start;			/* available when opened */
	bool		receives;		/* a bill adds units to it */
	bool		create;			/* cold: the row did not exist */
	bool		exists;			/* it exists, or a receipt of this call made it */
} BillRow;

/* One bill's line: a row (index into the call's rows) and its net delta. */
typedef struct BillLine
{
	int			row;
	int64		delta;
} BillLine;

typedef struct Bill
{
	char	   *key;
	char	   *args;			/* canonical JSON of its lines */
	BillLine   *lines;
	int			nlines;
	const char *status;
	bool		applied;		/* status is ok */
	int			same_key;		/* the previous bill with this key, or -1 */
} Bill;

/* The last bill of the call with a given key. */
typedef struct KeyEntry
{
	char		key[INV_MAX_NAME_BYTES + 1];
	int			last;
} KeyEntry;

/* The keys of the call already recorded (looked up one by one when found). */
static InvQuery KeysLookup = {
	"SELECT key FROM inventory.ledger WHERE key = ANY($1) AND call IS NOT NULL",
	1, {TEXTARRAYOID}
};

/* The ledger rows of the applied bills; each bill's first records its key. */
static InvQuery LedgerInsert = {
	"INSERT INTO inventory.ledger (op, key, sku, location, on_hand_delta, call) "
	"SELECT 'bill', k, s, l, d, c "
	"  FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[]) "
	"       AS u(k, s, l, d, c)",
	5, {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, TEXTARRAYOID}
};

static InvQuery StockUpdate = {
	"UPDATE inventory.stock s SET on_hand = s.on_hand + u.d "
	"FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(sku, location, d) "
	"WHERE s.sku = u.sku AND s.location = u.location "
	"  AND s.reserved <= s.on_hand + u.d",
	3, {TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID}
};

static InvQuery PendingInsert = {
	"INSERT INTO inventory.pending (sku, location, on_hand_delta) "
	"SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])",
	3, {TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID}
};

/* The error for a malformed document (the position comes from ParseContext). */
static void
BadBills(const char *message)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid bills: %s", message),
			 errhint("Bills are [{\"key\": \"b1\", \"lines\": [{\"sku\": \"a\", \"delta\": -2, \"location\": \"w1\"}]}].")));
}

/* Where in the document the parser is, for the context of any error. */
typedef struct ParsePosition
{
	int			bill;			/* 0-based, or -1 */
	int			line;			/* 0-based, or -1 */
} ParsePosition;

/* Error context: the bill and line being read. */
static void
ParseContext(void *arg)
{
	ParsePosition *pos = (ParsePosition *) arg;

	if (pos->line >= 0)
		errcontext("bill %d, line %d of the document", pos->bill + 1, pos->line + 1);
	else if (pos->bill >= 0)
		errcontext("bill %d of the document", pos->bill + 1);
}

/* Refuse members other than the allowed ones (a typo must not be ignored). */
static void
CheckMembers(JsonbContainer *object, const char *const *allowed)
{
	JsonbIterator *it = JsonbIteratorInit(object);
	JsonbValue	v;
	JsonbIteratorToken token;

	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		known = false;

		if (token != WJB_KEY)
			continue;
		for (int i = 0; allowed[i] != NULL && !known; i++)
			known = strlen(allowed[i]) == (size_t) v.val.string.len &&
				memcmp(allowed[i], v.val.string.val, v.val.string.len) == 0;
		if (!known)
			BadBills(psprintf("unknown member \"%s\"",
							  pnstrdup(v.val.string.val, v.val.string.len)));
	}
}

/* A string member of an object, checked as a name; NULL if absent. */
static char *
NameMember(JsonbContainer *object, const char *member, const char *what)
{
	JsonbValue	value;
	char	   *s;

	if (getKeyJsonValueFromContainer(object, member, strlen(member), &value) == NULL)
		return NULL;
	if (value.type != jbvString)
		BadBills(psprintf("\"%s\" must be a string", member));
	s = pnstrdup(value.val.string.val, value.val.string.len);
	InvCheckName(s, value.val.string.len, what);
	return s;
}

/* The integer delta of a line. */
static int64
DeltaMember(JsonbContainer *object)
{
	JsonbValue	value;
	Datum		delta;

	if (getKeyJsonValueFromContainer(object, "delta", 5, &value) == NULL)
		BadBills("a line has no \"delta\"");
	if (value.type != jbvNumeric)
		BadBills("\"delta\" must be a number");
	delta = DirectFunctionCall1(numeric_int8, NumericGetDatum(value.val.numeric));
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(value.val.numeric),
										  NumericGetDatum(int64_to_numeric(DatumGetInt64(delta))))))
		BadBills("\"delta\" must be a whole number");
	if (DatumGetInt64(delta) == 0)
		BadBills("\"delta\" must not be zero");
	return InvCheckDelta(DatumGetInt64(delta));
}

/* The rows of a call by name, so that finding a line's row is O(1). */
typedef struct RowName
{
	const char *sku;
	const char *location;
} RowName;

typedef struct RowNameEntry
{
	RowName		name;			/* the hash key */
	int			index;			/* into the call's rows */
} RowNameEntry;

/* Hash a row's names. */
static uint32
RowNameHash(const void *key, Size keysize)
{
	const RowName *name = (const RowName *) key;

	return hash_combine(string_hash(name->sku, strlen(name->sku) + 1),
						string_hash(name->location, strlen(name->location) + 1));
}

/* Compare two rows' names (0 when equal). */
static int
RowNameMatch(const void *a, const void *b, Size keysize)
{
	const RowName *na = (const RowName *) a;
	const RowName *nb = (const RowName *) b;

	return strcmp(na->sku, nb->sku) != 0 || strcmp(na->location, nb->location) != 0;
}

/* Find or add a row of the call. */
static int
RowIndex(HTAB *names, BillRow **rows, int *nrows, int *maxrows,
		 const char *sku, const char *location)
{
	RowName		name = {sku, location};
	RowNameEntry *entry;
	bool		found;
	BillRow    *row;

	entry = hash_search(names, &name, HASH_ENTER, &found);
	if (found)
		return entry->index;
	if (*nrows == *maxrows)
	{
		*maxrows *= 2;
		*rows = repalloc_huge(*rows, sizeof(BillRow) * *maxrows);
	}
	row = &(*rows)[*nrows];
	memset(row, 0, sizeof(BillRow));
	row->sku = pstrdup(sku);
	row->location = pstrdup(location);
	row->lock_key = InvRowLockKey(sku, location);
	/* the key must point at memory that lives as long as the table */
	entry->name.sku = row->sku;
	entry->name.location = row->location;
	entry->index = *nrows;
	return (*nrows)++;
}

/* Order rows by lock key, then name: the canonical order. */
static int
CompareRows(const void *a, const void *b)
{
	const BillRow *ra = (const BillRow *) a;
	const BillRow *rb = (const BillRow *) b;
	int			c;

	if (ra->lock_key != rb->lock_key)
		return ra->lock_key < rb->lock_key ? -1 : 1;
	c = strcmp(ra->sku, rb->sku);
	return c != 0 ? c : strcmp(ra->location, rb->location);
}

/* Order a bill's lines by their row's canonical position. */
static int
CompareLines(const void *a, const void *b)
{
	return ((const BillLine *) a)->row - ((const BillLine *) b)->row;
}

/* Order row indexes by their rows' canonical order (qsort_arg). */
static int
CompareRowIndexes(const void *a, const void *b, void *arg)
{
	const BillRow *rows = (const BillRow *) arg;

	return CompareRows(&rows[*(const int *) a], &rows[*(const int *) b]);
}

/*
 * Parse and check the whole document.  Fills bills and the distinct rows
 * (sorted canonically); lines of one row within a bill are summed.
 */
static int
ParseBills(Jsonb *json, Bill **bills_out, BillRow **rows_out, int *nrows_out,
		   HTAB **keys_out)
{
	JsonbContainer *root = &json->root;
	int			nbills;
	Bill	   *bills;
	int			nrows = 0;
	int			maxrows = 16;
	BillRow    *rows = palloc(sizeof(BillRow) * maxrows);
	BillRow    *sorted;
	int		   *byorder;
	int		   *order;
	HTAB	   *names;
	HASHCTL		info;
	StringInfoData buf;
	static const char *const bill_members[] = {"key", "lines", NULL};
	static const char *const line_members[] = {"sku", "delta", "location", NULL};
	ParsePosition pos = {-1, -1};
	ErrorContextCallback context = {error_context_stack, ParseContext, &pos};

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(RowName);
	info.entrysize = sizeof(RowNameEntry);
	info.hash = RowNameHash;
	info.match = RowNameMatch;
	info.hcxt = CurrentMemoryContext;
	names = hash_create("inventory bill rows", 256, &info,
						HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	memset(&info, 0, sizeof(info));
	info.keysize = INV_MAX_NAME_BYTES + 1;
	info.entrysize = sizeof(KeyEntry);
	info.hcxt = CurrentMemoryContext;
	*keys_out = hash_create("inventory bill keys", 256, &info,
							HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

	error_context_stack = &context;
	if (!JsonContainerIsArray(root) || JB_ROOT_IS_SCALAR(json))
		BadBills("the document must be a JSON array of bills");
	nbills = JsonContainerSize(root);
	if (nbills == 0)
		BadBills("there are no bills");
	bills = palloc0(sizeof(Bill) * nbills);

	for (int b = 0; b < nbills; b++)
	{
		JsonbValue *bill = getIthJsonbValueFromContainer(root, b);
		JsonbValue	lines;
		JsonbContainer *obj;
		int			n;

		pos.bill = b;
		pos.line = -1;
		if (bill->type != jbvBinary || !JsonContainerIsObject(bill->val.binary.data))
			BadBills("a bill must be a JSON object");
		obj = bill->val.binary.data;
		CheckMembers(obj, bill_members);
		bills[b].key = NameMember(obj, "key", "key");
		if (bills[b].key == NULL)
			BadBills("a bill has no \"key\"");
		{
			bool		found;
			KeyEntry   *entry = hash_search(*keys_out, bills[b].key, HASH_ENTER, &found);

			bills[b].same_key = found ? entry->last : -1;
			entry->last = b;
		}
		if (getKeyJsonValueFromContainer(obj, "lines", 5, &lines) == NULL ||
			lines.type != jbvBinary || !JsonContainerIsArray(lines.val.binary.data))
			BadBills("a bill must have an array of \"lines\"");
		n = JsonContainerSize(lines.val.binary.data);
		if (n == 0)
			BadBills("a bill must have at least one line");
		bills[b].lines = palloc(sizeof(BillLine) * n);
		for (int l = 0; l < n; l++)
		{
			JsonbValue *line = getIthJsonbValueFromContainer(lines.val.binary.data, l);
			JsonbContainer *lo;
			char	   *sku;
			char	   *location;
			int64		delta;

			CHECK_FOR_INTERRUPTS();
			pos.line = l;
			if (line->type != jbvBinary || !JsonContainerIsObject(line->val.binary.data))
				BadBills("a line must be a JSON object");
			lo = line->val.binary.data;
			CheckMembers(lo, line_members);
			sku = NameMember(lo, "sku", "sku");
			if (sku == NULL)
				BadBills("a line has no \"sku\"");
			location = NameMember(lo, "location", "location");
			delta = DeltaMember(lo);
			bills[b].lines[l].row = RowIndex(names, &rows, &nrows, &maxrows, sku,
											 location ? location : "default");
			bills[b].lines[l].delta = delta;
		}
		bills[b].nlines = n;
	}

	/* sort the rows canonically: order[old index] = new index */
	byorder = palloc(sizeof(int) * Max(nrows, 1));
	order = palloc(sizeof(int) * Max(nrows, 1));
	sorted = palloc(sizeof(BillRow) * Max(nrows, 1));
	for (int i = 0; i < nrows; i++)
		byorder[i] = i;
	qsort_arg(byorder, nrows, sizeof(int), CompareRowIndexes, rows);
	for (int i = 0; i < nrows; i++)
	{
		sorted[i] = rows[byorder[i]];
		order[byorder[i]] = i;
	}
	rows = sorted;

	/* renumber each bill's lines, sort them, and sum the lines of one row */
	initStringInfo(&buf);
	for (int b = 0; b < nbills; b++)
	{
		int			kept = 0;

		CHECK_FOR_INTERRUPTS();
		pos.bill = b;
		pos.line = -1;
		for (int k = 0; k < bills[b].nlines; k++)
			bills[b].lines[k].row = order[bills[b].lines[k].row];
		qsort(bills[b].lines, bills[b].nlines, sizeof(BillLine), CompareLines);
		for (int k = 0; k < bills[b].nlines; k++)
		{
			if (kept > 0 && bills[b].lines[kept - 1].row == bills[b].lines[k].row)
				bills[b].lines[kept - 1].delta =
					InvCheckDelta(InvAddQty(bills[b].lines[kept - 1].delta,
											bills[b].lines[k].delta));
			else
				bills[b].lines[kept++] = bills[b].lines[k];
		}
		bills[b].nlines = kept;
		for (int k = 0; k < kept; k++)
			if (bills[b].lines[k].delta > 0)
				rows[bills[b].lines[k].row].receives = true;

		/* the canonical arguments: {"lines":[{"sku":..,"location":..,"delta":..},..]} */
		resetStringInfo(&buf);
		appendStringInfoChar(&buf, '{');
		InvArgsArray(&buf, "lines");
		for (int k = 0; k < bills[b].nlines; k++)
		{
			BillRow    *row = &rows[bills[b].lines[k].row];

			InvArgsItem(&buf);
			InvArgsText(&buf, "sku", row->sku);
			InvArgsText(&buf, "location", row->location);
			InvArgsInt8(&buf, "delta", bills[b].lines[k].delta);
			InvArgsEnd(&buf);
		}
		appendStringInfoChar(&buf, ']');
		InvArgsEnd(&buf);
		bills[b].args = pnstrdup(buf.data, buf.len);
	}
	error_context_stack = context.previous;
	*bills_out = bills;
	*rows_out = rows;
	*nrows_out = nrows;
	return nbills;
}

/*
 * Decide every bill in order against the simulated stock.  Units taken from
 * hot rows leave their counters now; units arriving at hot rows arrive at
 * commit (and serve later bills of this call at once).
 */
static void
Simulate(Bill *bills, int nbills, BillRow *rows)
{
	for (int b = 0; b < nbills; b++)
	{
		Bill	   *bill = &bills[b];
		bool		ok = true;
		int			taken = 0;
		int64		left;

		if (bill->status != NULL)
			continue;			/* duplicate, decided from the keys */

		CHECK_FOR_INTERRUPTS();
		/*
		 * Earlier bills of this call with the key: other lines are the
		 * key-reuse error (whether they went through or not, so that a
		 * retry of the call answers as the call did); an identical one
		 * applied makes this a duplicate.
		 */
		for (int e = bill->same_key; e >= 0; e = bills[e].same_key)
		{
			if (strcmp(bills[e].args, bill->args) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNIQUE_VIOLATION), errkeyreuse(),
						 errmsg("idempotency key \"%s\" was already used by another call", bill->key),
						 errdetail("Two bills of this call have the key with other lines."),
						 errhint("Use a new key for every distinct call; retry only with the same arguments.")));
			if (bills[e].applied && bill->status == NULL)
				bill->status = INV_DUPLICATE;
		}
		if (bill->status != NULL)
			continue;

		for (int k = 0; k < bill->nlines && ok; k++)
		{
			BillRow    *row = &rows[bill->lines[k].row];
			int64		delta = bill->lines[k].delta;

			if (!row->exists && delta < 0)
			{
				bill->status = INV_NOT_FOUND;
				ok = false;
			}
			else if (delta < 0 && row->target.hot)
			{
				/* as InvTake: overdue holds are expired when units fall short */
				if (InvTake(&row->target, -delta, &left))
					taken = k + 1;
				else
					ok = false;
			}
			else if (delta < 0 && row->available < -delta)
				ok = false;
		}
		if (!ok)
		{
			for (int k = 0; k < taken; k++)
				if (bill->lines[k].delta < 0 && rows[bill->lines[k].row].target.hot)
					HotUntake(rows[bill->lines[k].row].target.hot, -bill->lines[k].delta);
			if (bill->status == NULL)
				bill->status = INV_INSUFFICIENT;
			continue;
		}

		for (int k = 0; k < bill->nlines; k++)
		{
			BillRow    *row = &rows[bill->lines[k].row];
			int64		delta = bill->lines[k].delta;

			row->on_hand = InvAddQty(row->on_hand, delta);
			row->exists = true;
			row->applied += delta;
			if (row->target.hot)
			{
				if (delta > 0)
					HotArrive(row->target.hot, delta);
			}
			else
				row->available += delta;
		}
		bill->status = INV_OK;
		bill->applied = true;
	}
}

/*
 * Write the ledger rows of the applied bills.  Their keys were free when
 * looked up; one recorded since by a transaction still in progress then
 * makes the insert wait for it and, if it committed, fail on the unique
 * index of keys: that is reported as what it is, a concurrent retry.
 */
static void
InsertLedger(Datum *values)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		InvRun(&LedgerInsert, values, NULL, 0);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		/*
		 * a unique index of the ledger: the index of keys, or a copy of it
		 * or one over the key and more (its identity's cannot conflict)
		 */
		if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION ||
			edata->table_name == NULL || strcmp(edata->table_name, "ledger") != 0 ||
			edata->schema_name == NULL || strcmp(edata->schema_name, "inventory") != 0)
			PG_RE_THROW();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not apply bills: a key was recorded concurrently"),
				 errhint("Retry the call unchanged: bills already applied will answer duplicate.")));
	}
	PG_END_TRY();
}

PG_FUNCTION_INFO_V1(apply_bills);

/* inventory.apply_bills(bills jsonb): TABLE(key text, status text). */
Datum
apply_bills(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Bill	   *bills;
	BillRow    *rows;
	int			nrows;
	int			nbills;
	char	  **keys;
	int			nkeys = 0;
	Datum		values[5];
	HTAB	   *keyindex;

	InvCheckReady("apply_bills()");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("bills must not be null")));
	nbills = ParseBills(PG_GETARG_JSONB_P(0), &bills, &rows, &nrows, &keyindex);
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();

	/*
	 * 1. open every row once, in canonical order.  A hot row opens through
	 * its counter (no statement); every other row is locked exclusively,
	 * and all of them are then read in one statement.  Only rows that need
	 * more (a hot row to load, a queue left from hot days, holds to expire)
	 * take statements of their own.
	 */
	{
		char	  **skus = palloc(sizeof(char *) * Max(nrows, 1));
		char	  **locations = palloc(sizeof(char *) * Max(nrows, 1));
		InvRow	   *figures = palloc(sizeof(InvRow) * Max(nrows, 1));
		bool	   *found = palloc(sizeof(bool) * Max(nrows, 1));
		int		   *cold = palloc(sizeof(int) * Max(nrows, 1));
		int			ncold = 0;
		TimestampTz now = GetCurrentStatementStartTimestamp();

		for (int i = 0; i < nrows; i++)
		{
			BillRow    *row = &rows[i];

			CHECK_FOR_INTERRUPTS();
			if (HotMaybeLoaded(row->sku, row->location))
			{
				/* a hot row that receives units: exclusively, for an exact on_hand */
				(void) InvOpen(&row->target, row->sku, row->location,
							   row->receives ? INV_LOCK : 0);
				continue;
			}
			InvLockRow(row->sku, row->location, false);
			row->target.sku = row->sku;
			row->target.location = row->location;
			row->target.hot = NULL;
			skus[ncold] = row->sku;
			locations[ncold] = row->location;
			cold[ncold++] = i;
		}
		if (ncold > 0)
			InvRowsRead(skus, locations, ncold, figures, found);
		for (int c = 0; c < ncold; c++)
		{
			BillRow    *row = &rows[cold[c]];

			CHECK_FOR_INTERRUPTS();
			row->target.found = found[c];
			row->target.prepared = false;
			row->target.row = figures[c];
			if (found[c] && figures[c].hot && !figures[c].mine)
			{
				/* hot, its counter not loaded yet: open it properly */
				InvUnlockRow(row->sku, row->location, false);
				(void) InvOpen(&row->target, row->sku, row->location,
							   row->receives ? INV_LOCK : 0);
			}
			else
				/* nothing to tidy up (InvPrepare below) unless so */
				row->target.prepared = !(figures[c].queued > 0 || figures[c].overdue > 0 ||
										 figures[c].noted_expiry <= now);
		}
	}
	for (int i = 0; i < nrows; i++)
	{
		BillRow    *row = &rows[i];
		InvRow		now;

		row->exists = row->target.found;
		if (row->target.hot)
		{
			if (row->receives && InvRowRead(row->sku, row->location, &now))
				row->on_hand = now.on_hand;
			row->start = HotAvailable(row->target.hot);
		}
		else if (row->target.found)
		{
			InvPrepare(&row->target);
			row->available = InvRowAvailable(&row->target.row);
			row->on_hand = row->target.row.on_hand;
			row->start = row->available;
		}
		else
			row->create = true;
	}

	/* 2. keys applied before this call: duplicates, or the key-reuse error */
	keys = palloc(sizeof(char *) * nbills);
	for (int b = 0; b < nbills; b++)
		keys[b] = bills[b].key;
	values[0] = InvTextArray(keys, nbills);
	InvRunLatest(&KeysLookup, values, NULL, 0);
	{
		int			nfound = (int) SPI_processed;
		char	  **found = palloc(sizeof(char *) * Max(nfound, 1));

		for (int r = 0; r < nfound; r++)
			found[r] = InvResultText(r, 1);
		for (int r = 0; r < nfound; r++)
		{
			KeyEntry   *entry = hash_search(keyindex, found[r], HASH_FIND, NULL);
			char	   *call;
			char	   *old;

			CHECK_FOR_INTERRUPTS();
			if (!InvKeyLookup(found[r], &call, &old))
				continue;
			for (int b = entry ? entry->last : -1; b >= 0; b = bills[b].same_key)
			{
				if (strcmp(call, "bill") != 0 || old == NULL || strcmp(old, bills[b].args) != 0)
					InvKeyReusedError(found[r], "bill", bills[b].args, call, old);
				bills[b].status = INV_DUPLICATE;
			}
		}
		/* keys archived with the calls that applied them */
		for (int b = 0; b < nbills; b++)
		{
			CHECK_FOR_INTERRUPTS();
			if (bills[b].status == NULL && InvKeyArchived(bills[b].key))
				bills[b].status = INV_DUPLICATE;
		}
	}

	/* 3. simulate the bills in order */
	Simulate(bills, nbills, rows);

	/* 4. write: keys, new rows, ledger, ordinary rows, hot queues */
	for (int b = 0; b < nbills; b++)
		nkeys += bills[b].applied;
	if (nkeys > 0)
	{
		int			nlines = 0;
		char	  **lkeys;
		char	  **lskus;
		char	  **llocs;
		char	  **lcalls;
		int64	   *ldeltas;
		int			m = 0;

		{
			char	  **cskus = palloc(sizeof(char *) * nrows);
			char	  **clocations = palloc(sizeof(char *) * nrows);
			int			ncreate = 0;

			for (int i = 0; i < nrows; i++)
				if (rows[i].create && rows[i].exists)
				{
					cskus[ncreate] = rows[i].sku;
					clocations[ncreate++] = rows[i].location;
				}
			if (ncreate > 0)
				InvRowsCreate(cskus, clocations, ncreate);
		}

		for (int b = 0; b < nbills; b++)
			if (bills[b].applied)
				nlines += bills[b].nlines;
		lkeys = palloc(sizeof(char *) * nlines);
		lskus = palloc(sizeof(char *) * nlines);
		llocs = palloc(sizeof(char *) * nlines);
		lcalls = palloc(sizeof(char *) * nlines);
		ldeltas = palloc(sizeof(int64) * nlines);
		for (int b = 0; b < nbills; b++)
			for (int k = 0; bills[b].applied && k < bills[b].nlines; k++)
			{
				lkeys[m] = bills[b].key;
				lskus[m] = rows[bills[b].lines[k].row].sku;
				llocs[m] = rows[bills[b].lines[k].row].location;
				lcalls[m] = k == 0 ? "bill" : NULL;
				ldeltas[m++] = bills[b].lines[k].delta;
			}
		values[0] = InvTextArray(lkeys, m);
		values[1] = InvTextArray(lskus, m);
		values[2] = InvTextArray(llocs, m);
		values[3] = InvInt8Array(ldeltas, m);
		values[4] = InvTextArray(lcalls, m);
		InsertLedger(values);

		/* one change per row: ordinary rows updated, hot rows queued */
		for (int hot = 0; hot <= 1; hot++)
		{
			int			n = 0;

			for (int i = 0; i < nrows; i++)
			{
				if ((rows[i].target.hot != NULL) != hot || rows[i].applied == 0)
					continue;
				lskus[n] = rows[i].sku;
				llocs[n] = rows[i].location;
				ldeltas[n++] = rows[i].applied;
			}
			if (n == 0)
				continue;
			values[0] = InvTextArray(lskus, n);
			values[1] = InvTextArray(llocs, n);
			values[2] = InvInt8Array(ldeltas, n);
			InvRun(hot ? &PendingInsert : &StockUpdate, values, NULL, 0);
			/*
			 * (each row was decided from its latest commits: a row that
			 * the update does not find so was changed after the snapshot
			 * of a REPEATABLE READ or SERIALIZABLE transaction)
			 */
			if (!hot && SPI_processed != (uint64) n)
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not apply bills: a stock row changed after this transaction's snapshot"),
						 errhint("Retry the transaction.")));
		}
	}
	SPI_finish();

	for (int i = 0; i < nrows; i++)
		InvNotifyLevel(rows[i].sku, rows[i].location, rows[i].start,
					   rows[i].target.hot ? HotAvailable(rows[i].target.hot)
					   : rows[i].available);

	for (int b = 0; b < nbills; b++)
	{
		Datum		out[2] = {CStringGetTextDatum(bills[b].key),
		CStringGetTextDatum(bills[b].status)};
		bool		nulls[2] = {false, false};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, nulls);
		InvStatsCount(InvStatsCall("apply_bills"), bills[b].status);
	}
	return (Datum) 0;
}
