/*
 * allocate.c
 *	  Allocation across locations: set_location, deduct_any, reserve_any,
 *	  deduct_cart_any and allocation; and the holds of reserve_cart, which
 *	  allocate with no choice to make.
 *
 * A shop holds a SKU in several warehouses and wants the database to choose
 * where the units come from, without ever overselling any of them and
 * without two orders ever taking the same unit.  The choice is made under
 * the same locks as any other call:
 *
 *	 1. the candidate locations are listed: the caller's (in the caller's
 *		order, inactive ones skipped), or every active location that holds
 *		the SKU, highest priority first, ties by name;
 *	 2. every candidate row is opened in the canonical lock order (an
 *		ordinary row locked exclusively, a hot row through its counter), so
 *		allocations over shared locations never deadlock, with each other or
 *		with any other call;
 *	 3. the key is checked (a retry answers "duplicate");
 *	 4. the units available at each candidate are read, and the allocation
 *		is planned; an ordinary row's figure cannot change while we hold its
 *		lock, but a hot row's counter can fall meanwhile, so the units are
 *		then taken part by part, and if a hot counter no longer has its part,
 *		every part taken is given back and the plan is made again from the
 *		figures as they are now (a few times, then "insufficient");
 *	 5. the parts are written in the order they were filled, the first one
 *		recording the call's key, its row's ref the call's canonical
 *		arguments (the candidates and the strategy are not in the rows).
 *
 * A cart goes to as few locations as it can: every set of one candidate is
 * tried first, then every set of two, and so on, each size in priority order
 * (so ties go to the higher priorities), and the first set that can serve
 * every line serves the cart, each line filled from the set's locations in
 * priority order.  Past 100,000 sets the search gives way to a greedy one:
 * take the location that serves most of what is missing, until all is.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "inventory.h"
#include "hot.h"

/* How often a plan is made again after a hot counter fell under it. */
#define PLAN_ATTEMPTS 5

/* Sets of locations tried for a cart before the greedy search. */
#define MAX_CART_SETS 100000

typedef enum Strategy
{
	STRATEGY_PRIORITY,
	STRATEGY_MOST_AVAILABLE,
	STRATEGY_SINGLE
} Strategy;

/* A candidate stock row: one sku at one candidate location. */
typedef struct Candidate
{
	char	   *sku;
	char	   *location;
	int			rank;			/* the location's place among the candidates */
	InvTarget	target;
	int64		available;
	int64		part;			/* units planned from it */
	bool		taken;			/* its part was taken */
} Candidate;

static InvQuery SetLocation = {
	"INSERT INTO inventory.location (location, priority, active) VALUES ($1, $2, $3) "
	"ON CONFLICT (location) DO UPDATE SET priority = excluded.priority, active = excluded.active",
	3, {TEXTOID, INT4OID, BOOLOID}
};

/* Where the units of a call came from, in the order they were taken. */
static InvQuery Allocation = {
	"SELECT sku, location, sum(CASE op WHEN 'reserve' THEN reserved_delta ELSE -on_hand_delta END)::bigint "
	"FROM inventory.ledger "
	"WHERE key = $1 AND (op IN ('deduct', 'reserve') OR (op = 'bill' AND on_hand_delta < 0)) "
	"GROUP BY sku, location ORDER BY min(id)",
	1, {TEXTOID}
};

PG_FUNCTION_INFO_V1(set_location);

/*
 * inventory.set_location(location, priority, active): a location's priority
 * for allocation (higher first) and whether it may be allocated from.
 */
Datum
set_location(PG_FUNCTION_ARGS)
{
	char	   *location = InvArgName(fcinfo, 0, "location");
	Datum		values[3];

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("priority must not be null")));
	values[0] = CStringGetTextDatum(location);
	values[1] = Int32GetDatum(PG_GETARG_INT32(1));
	values[2] = BoolGetDatum(InvArgBool(fcinfo, 2, "active"));
	InvCheckReady("set_location()");
	SPI_connect();
	InvRun(&SetLocation, values, NULL, 0);
	SPI_finish();
	PG_RETURN_VOID();
}

/* The strategy argument. */
static Strategy
StrategyArg(FunctionCallInfo fcinfo, int argno)
{
	char	   *name;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("strategy must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (strcmp(name, "priority") == 0)
		return STRATEGY_PRIORITY;
	if (strcmp(name, "most_available") == 0)
		return STRATEGY_MOST_AVAILABLE;
	if (strcmp(name, "single") == 0)
		return STRATEGY_SINGLE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown strategy \"%s\"", name),
			 errhint("The strategies are priority, most_available and single.")));
	pg_unreachable();
}

static const char *const StrategyNames[] = {"priority", "most_available", "single"};

/* A reservation's terms: its ttl, and when it expires (ttl NULL: a sale). */
typedef struct Hold
{
	Interval   *ttl;
	TimestampTz expires_at;
} Hold;

/* The terms of a sale: no hold. */
static const Hold sale = {NULL, 0};

/*
 * The caller's candidate locations (argument argno), checked: not empty, no
 * NULL, no location twice.  NULL when the caller gave none.  *n gets how many.
 */
static char **
GivenLocations(FunctionCallInfo fcinfo, int argno, int *n)
{
	Datum	   *elems;
	char	  **names;

	if (PG_ARGISNULL(argno))
	{
		*n = 0;
		return NULL;
	}
	*n = InvArgArray(fcinfo, argno, "locations", TEXTOID, &elems);
	if (*n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("locations must not be empty"),
				 errhint("Pass NULL to allocate from every active location.")));
	names = palloc(sizeof(char *) * *n);
	for (int i = 0; i < *n; i++)
	{
		names[i] = InvElemName(elems[i], "location");
		for (int j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("locations must not repeat a location"),
						 errdetail("\"%s\" is given twice.", names[i])));
	}
	return names;
}

/* The canonical text of a location list (NULL: every active location). */
static void
ArgsLocations(StringInfo buf, char **given, int ngiven)
{
	InvArgsArray(buf, "locations");
	if (given == NULL)
	{
		/* InvArgsArray opened "[": make the member null instead */
		buf->len--;
		buf->data[buf->len] = '\0';
		appendStringInfoString(buf, "null");
		return;
	}
	for (int i = 0; i < ngiven; i++)
	{
		if (i > 0)
			appendStringInfoString(buf, ", ");
		escape_json(buf, given[i]);
	}
	appendStringInfoChar(buf, ']');
}

/* Locations by priority (higher first), then by name (byte order). */
typedef struct RankedLocation
{
	char	   *name;
	int			priority;
} RankedLocation;

static int
CompareRanked(const void *a, const void *b)
{
	const RankedLocation *ra = a;
	const RankedLocation *rb = b;

	if (ra->priority != rb->priority)
		return ra->priority > rb->priority ? -1 : 1;
	return strcmp(ra->name, rb->name);
}

/*
 * The candidate locations now, in the order to try them: the active ones of
 * the caller's list, or every active location holding one of the skus.
 * Read directly, without locks: a list of rows to lock.  *n gets how many.
 */
static char **
CandidateLocations(char **skus, int nskus, char **given, int ngiven, int *n)
{
	char	  **names = given;
	int			count = ngiven;
	int		   *priority;
	bool	   *active;
	RankedLocation *ranked;

	if (given == NULL)
	{
		/* the union of the skus' locations */
		count = 0;
		names = NULL;
		for (int s = 0; s < nskus; s++)
		{
			int			m;
			char	  **found = InvTablesSkuLocations(skus[s], &m);

			names = names ? repalloc(names, sizeof(char *) * (count + m))
				: palloc(sizeof(char *) * Max(m, 1));
			for (int i = 0; i < m; i++)
			{
				bool		seen = false;

				for (int j = 0; j < count && !seen; j++)
					seen = strcmp(names[j], found[i]) == 0;
				if (!seen)
					names[count++] = found[i];
			}
		}
	}
	priority = palloc(sizeof(int) * Max(count, 1));
	active = palloc(sizeof(bool) * Max(count, 1));
	InvTablesLocationRules(names, count, priority, active);
	ranked = palloc(sizeof(RankedLocation) * Max(count, 1));
	*n = 0;
	for (int i = 0; i < count; i++)
		if (active[i])
		{
			ranked[*n].name = names[i];
			ranked[(*n)++].priority = priority[i];
		}
	if (given == NULL)
		qsort(ranked, *n, sizeof(RankedLocation), CompareRanked);
	for (int i = 0; i < *n; i++)
		names[i] = ranked[i].name;
	return names;
}

/* Order candidates canonically, for locking. */
static int
CompareLockOrder(const void *a, const void *b)
{
	const Candidate *ca = *(Candidate *const *) a;
	const Candidate *cb = *(Candidate *const *) b;
	InvRowRef	ra = {ca->sku, ca->location, InvRowLockKey(ca->sku, ca->location)};
	InvRowRef	rb = {cb->sku, cb->location, InvRowLockKey(cb->sku, cb->location)};

	return InvRowOrder(&ra, &rb);
}

/* Open every candidate row, in the canonical lock order. */
static void
OpenCandidates(Candidate *cands, int n)
{
	Candidate **order = palloc(sizeof(Candidate *) * Max(n, 1));

	for (int i = 0; i < n; i++)
		order[i] = &cands[i];
	qsort(order, n, sizeof(Candidate *), CompareLockOrder);
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		(void) InvOpen(&order[i]->target, order[i]->sku, order[i]->location, 0);
	}
}

/* Read the units available at every candidate row now. */
static void
ReadAvailable(Candidate *cands, int n)
{
	for (int i = 0; i < n; i++)
	{
		Candidate  *c = &cands[i];

		if (c->target.hot)
			c->available = HotAvailable(c->target.hot);
		else if (c->target.found)
		{
			InvPrepare(&c->target);
			c->available = InvRowAvailable(&c->target.row);
		}
		else
			c->available = 0;
	}
}

/* Give back the units taken from hot counters for parts not applied. */
static void
GiveBack(Candidate *cands, int n)
{
	for (int i = 0; i < n; i++)
	{
		if (cands[i].taken && cands[i].target.hot)
			HotUntake(cands[i].target.hot, cands[i].part);
		cands[i].taken = false;
	}
}

/*
 * Take every planned part (all or none); false, with nothing taken, if a hot
 * counter no longer has its part.
 */
static bool
TakeParts(Candidate *cands, int n)
{
	int64		left;

	for (int i = 0; i < n; i++)
	{
		if (cands[i].part == 0)
			continue;
		if (!InvTake(&cands[i].target, cands[i].part, &left))
		{
			GiveBack(cands, n);
			return false;
		}
		cands[i].taken = true;
	}
	return true;
}

/* Sum of the candidates' available units (bigint-safe: capped). */
static int64
TotalAvailable(const Candidate *cands, int n)
{
	int64		total = 0;

	for (int i = 0; i < n; i++)
		if (pg_add_s64_overflow(total, cands[i].available, &total))
			return PG_INT64_MAX;
	return total;
}

/* Units left at the candidates after the parts were written. */
static int64
LeftAvailable(Candidate *cands, int n)
{
	for (int i = 0; i < n; i++)
		if (cands[i].target.hot)
			cands[i].available = HotAvailable(cands[i].target.hot);
	return TotalAvailable(cands, n);
}

/* Candidate indexes, by most available first, then by rank. */
static const Candidate *SortCands;

static int
CompareMostAvailable(const void *a, const void *b)
{
	const Candidate *ca = &SortCands[*(const int *) a];
	const Candidate *cb = &SortCands[*(const int *) b];

	if (ca->available != cb->available)
		return ca->available > cb->available ? -1 : 1;
	return ca->rank - cb->rank;
}

/*
 * Plan qty units of one sku over its candidates (in rank order) by the
 * strategy: each candidate's part, and order[] the order they are filled
 * in; false if they cannot serve it.
 */
static bool
PlanOne(Candidate *cands, int n, int64 qty, Strategy strategy, int *order)
{
	int64		missing = qty;

	for (int i = 0; i < n; i++)
	{
		order[i] = i;
		cands[i].part = 0;
	}
	if (strategy == STRATEGY_MOST_AVAILABLE)
	{
		SortCands = cands;
		qsort(order, n, sizeof(int), CompareMostAvailable);
	}
	for (int k = 0; k < n && missing > 0; k++)
	{
		Candidate  *c = &cands[order[k]];

		if (strategy == STRATEGY_SINGLE)
		{
			if (c->available >= qty)
			{
				c->part = qty;
				missing = 0;
			}
			continue;
		}
		c->part = Min(c->available, missing);
		missing -= c->part;
	}
	return missing == 0;
}

/*
 * Write the parts taken, in the order they were filled (the first records
 * the key), as sales, or as holds: a reserve's movement and a reservation
 * row per part, parts numbered from 1.  False, having written nothing, if
 * another transaction recorded the key meanwhile.  fill[] lists candidate
 * indexes in filling order.
 */
static bool
WriteParts(Candidate *cands, const int *fill, int nfill, const char *call,
		   const char *key, const char *args, const Hold *hold)
{
	bool		first = true;
	int64		left;
	int			part = 0;

	for (int k = 0; k < nfill; k++)
	{
		Candidate  *c = &cands[fill[k]];
		InvMovement m;

		if (c->part == 0)
			continue;
		if (hold->ttl)
		{
			InvMovementInit(&m, "reserve", key, 0, c->part);
			m.expires_at = hold->expires_at;
		}
		else
			InvMovementInit(&m, "deduct", key, -c->part, 0);
		m.call = first ? call : NULL;
		m.ref = first ? args : NULL;
		m.args = args;
		if (!InvMoveRecorded(&m, &c->target, &left))
			return false;
		if (hold->ttl)
			InvInsertHold(key, ++part, c->sku, c->location, c->part,
						  hold->expires_at, hold->ttl);
		c->available = left;
		first = false;
	}
	return true;
}

/* The location that served all the parts, or NULL if they were split. */
static const char *
ServedFrom(const Candidate *cands, int n)
{
	const char *from = NULL;

	for (int i = 0; i < n; i++)
	{
		if (cands[i].part == 0)
			continue;
		if (from != NULL && strcmp(from, cands[i].location) != 0)
			return NULL;
		from = cands[i].location;
	}
	return from;
}

/*
 * How an allocation plans: each candidate's part (cands[].part), and fill[]
 * the candidates in the order they are filled (*nfill of them); false if
 * the candidates cannot serve it.
 */
typedef bool (*Planner) (Candidate *cands, int n, const void *arg, int *fill, int *nfill);

/* deduct_any's plan: qty units of one sku by a strategy. */
typedef struct SkuPlan
{
	int64		qty;
	Strategy	strategy;
} SkuPlan;

static bool
PlanSku(Candidate *cands, int n, const void *arg, int *fill, int *nfill)
{
	const SkuPlan *plan = arg;

	*nfill = n;
	return PlanOne(cands, n, plan->qty, plan->strategy, fill);
}

/* A cart line: a sku and its units. */
typedef struct CartLine
{
	char	   *sku;
	int64		qty;
} CartLine;

/* Order cart lines by sku (their canonical order). */
static int
CompareCartLines(const void *a, const void *b)
{
	return strcmp(((const CartLine *) a)->sku, ((const CartLine *) b)->sku);
}

/*
 * Can the locations of set[] (k location indexes) serve every line?  The
 * candidate of line l at location j is cands[l * m + j].
 */
static bool
SetServes(const Candidate *cands, const CartLine *lines, int nlines, int m,
		  const int *set, int k)
{
	for (int l = 0; l < nlines; l++)
	{
		int64		sum = 0;

		for (int j = 0; j < k && sum < lines[l].qty; j++)
			sum += cands[l * m + set[j]].available;
		if (sum < lines[l].qty)
			return false;
	}
	return true;
}

/*
 * The set of fewest locations that serves the cart (see the file header):
 * its location indexes in set[], in rank order; returns its size, 0 if even
 * every candidate together cannot serve it.
 */
static int
ChooseSet(const Candidate *cands, const CartLine *lines, int nlines, int m, int *set)
{
	long		tried = 0;
	bool	   *chosen;
	int			k;

	for (k = 1; k <= m; k++)
	{
		/* every k-subset of 0..m-1 in lexicographic order */
		for (int j = 0; j < k; j++)
			set[j] = j;
		for (;;)
		{
			int			j;

			CHECK_FOR_INTERRUPTS();
			if (SetServes(cands, lines, nlines, m, set, k))
				return k;
			if (++tried >= MAX_CART_SETS)
				goto greedy;
			for (j = k - 1; j >= 0 && set[j] == m - k + j; j--)
				;
			if (j < 0)
				break;
			set[j]++;
			for (j++; j < k; j++)
				set[j] = set[j - 1] + 1;
		}
	}
	return 0;

greedy:
	/* the location that serves most of what is missing, until all is */
	chosen = palloc0(sizeof(bool) * m);
	for (k = 0; !SetServes(cands, lines, nlines, m, set, k);)
	{
		int			best = -1;
		int64		best_units = 0;

		for (int j = 0; j < m; j++)
		{
			int64		units = 0;

			if (chosen[j])
				continue;
			for (int l = 0; l < nlines; l++)
			{
				int64		missing = lines[l].qty;

				for (int i = 0; i < k && missing > 0; i++)
					missing -= Min(missing, cands[l * m + set[i]].available);
				units += Min(missing, cands[l * m + j].available);
			}
			if (units > best_units)
			{
				best = j;
				best_units = units;
			}
		}
		if (best < 0)
			return 0;
		chosen[best] = true;
		set[k++] = best;
	}
	/* in rank order, as every set above */
	k = 0;
	for (int j = 0; j < m; j++)
		if (chosen[j])
			set[k++] = j;
	return k;
}

/* deduct_cart_any's plan: lines over m locations, cands[l * m + j]. */
typedef struct CartPlan
{
	const CartLine *lines;
	int			nlines;
	int			m;
} CartPlan;

/*
 * Every line filled from the fewest locations' set: each line from the
 * fewest of the set's locations that serve it (ChooseSet over that line
 * alone, among the set's locations), in rank order, so a line is split only
 * when no one location of the set has all of it.
 */
static bool
PlanCart(Candidate *cands, int n, const void *arg, int *fill, int *nfill)
{
	const CartPlan *plan = arg;
	int			m = plan->m;
	int		   *set = palloc(sizeof(int) * Max(m, 1));
	int		   *sub = palloc(sizeof(int) * Max(m, 1));
	Candidate  *line = palloc(sizeof(Candidate) * Max(m, 1));
	int			k = ChooseSet(cands, plan->lines, plan->nlines, m, set);

	for (int i = 0; i < n; i++)
		cands[i].part = 0;
	*nfill = 0;
	if (k == 0)
		return false;
	for (int l = 0; l < plan->nlines; l++)
	{
		int64		missing = plan->lines[l].qty;
		int			h;

		/* the line's candidates at the set's locations, in rank order */
		for (int j = 0; j < k; j++)
			line[j] = cands[l * m + set[j]];
		h = ChooseSet(line, &plan->lines[l], 1, k, sub);
		for (int j = 0; j < h && missing > 0; j++)
		{
			Candidate  *c = &cands[l * m + set[sub[j]]];

			c->part = Min(c->available, missing);
			missing -= c->part;
			fill[(*nfill)++] = l * m + set[sub[j]];
		}
	}
	return true;
}

/* Let go of the candidates' locks FastAllocate took; returns false. */
static bool
UnlockCandidates(Candidate **order, int n)
{
	for (int i = n - 1; i >= 0; i--)
		InvUnlockRow(order[i]->sku, order[i]->location, false);
	return false;
}

/*
 * The everyday way for an allocation (tables.c): at READ COMMITTED, with no
 * candidate hot, the candidate rows are locked in canonical order, read
 * directly, planned, and the parts written directly (sales, or holds on the
 * hold's terms), the first recording the key and the call's arguments.
 * False, having written nothing and let
 * go of the locks it took, when the general way must decide (a hot row, a
 * hold due, no plan, the key taken...): a row found hot is opened in share
 * mode by the general way, and an exclusive lock kept till commit would
 * hold up its other writers.
 */
static bool
FastAllocate(Candidate *cands, int n, Planner planner, const void *arg,
			 const char *call, const char *key, const char *args, const Hold *hold,
			 int *fill, int *nfill)
{
	Candidate **order;
	char	  **skus;
	char	  **locations;
	int64	   *available;
	int		   *parts;
	int64	   *qtys;
	int64	   *after;
	int			nparts = 0;
	InvDirectRows *rows;

	if (IsolationUsesXactSnapshot() || n == 0)
		return false;
	for (int i = 0; i < n; i++)
		if (InvHotLoaded(cands[i].sku, cands[i].location))
			return false;
	order = palloc(sizeof(Candidate *) * n);
	for (int i = 0; i < n; i++)
		order[i] = &cands[i];
	qsort(order, n, sizeof(Candidate *), CompareLockOrder);
	for (int i = 0; i < n; i++)
		InvLockRow(order[i]->sku, order[i]->location, false);

	skus = palloc(sizeof(char *) * n);
	locations = palloc(sizeof(char *) * n);
	available = palloc(sizeof(int64) * n);
	for (int i = 0; i < n; i++)
	{
		skus[i] = cands[i].sku;
		locations[i] = cands[i].location;
	}
	if ((rows = InvTablesReadRows(skus, locations, n, available)) == NULL)
		return UnlockCandidates(order, n);
	for (int i = 0; i < n; i++)
		cands[i].available = available[i];
	if (!planner(cands, n, arg, fill, nfill))
	{
		InvTablesReleaseRows(rows);
		return UnlockCandidates(order, n);
	}

	parts = palloc(sizeof(int) * Max(*nfill, 1));
	qtys = palloc(sizeof(int64) * Max(*nfill, 1));
	after = palloc(sizeof(int64) * Max(*nfill, 1));
	for (int k = 0; k < *nfill; k++)
		if (cands[fill[k]].part > 0)
		{
			parts[nparts] = fill[k];
			qtys[nparts++] = cands[fill[k]].part;
		}
	if (!InvTablesWriteRows(rows, call, key, args, parts, qtys, nparts, hold->ttl,
							hold->expires_at, after))
		return UnlockCandidates(order, n);
	for (int k = 0; k < nparts; k++)
	{
		Candidate  *c = &cands[parts[k]];

		c->available = after[k];
		InvNotifyLevel(c->sku, c->location, after[k] + qtys[k], after[k]);
	}
	return true;
}

/*
 * The general way (see the file header): every candidate opened, the key
 * checked, planned, taken and written.  Returns the status; the parts are
 * in cands[].part, their rows' figures after in cands[].available.
 */
static const char *
Allocate(Candidate *cands, int n, Planner planner, const void *arg,
		 const char *call, const char *key, const char *args, const Hold *hold,
		 int *fill, int *nfill)
{
	bool		planned = false;
	InvKeyState state;

	if (FastAllocate(cands, n, planner, arg, call, key, args, hold, fill, nfill))
		return INV_OK;
	OpenCandidates(cands, n);
	state = InvKeyCheck(key, call, args);
	if (state != INV_KEY_NEW)
	{
		ReadAvailable(cands, n);
		/* a tombstone: the reservation was released before it arrived */
		return state == INV_KEY_TOMBSTONE ? INV_CONFLICT : INV_DUPLICATE;
	}
	for (int attempt = 0; attempt < PLAN_ATTEMPTS && !planned; attempt++)
	{
		ReadAvailable(cands, n);
		if (!planner(cands, n, arg, fill, nfill))
			break;
		planned = TakeParts(cands, n);
	}
	if (!planned)
		return INV_INSUFFICIENT;
	if (!WriteParts(cands, fill, *nfill, call, key, args, hold))
	{
		GiveBack(cands, n);
		state = InvKeyCheck(key, call, args);
		return state == INV_KEY_TOMBSTONE ? INV_CONFLICT : INV_DUPLICATE;
	}
	(void) LeftAvailable(cands, n);
	return INV_OK;
}

/*
 * qty units of one sku (deduct_any, reserve_any): the candidates listed, the
 * allocation made, the outcome.  args has the call's canonical arguments but
 * for the strategy and locations, added here.
 */
static Datum
AllocateSku(FunctionCallInfo fcinfo, const char *call, char *sku, const char *key,
			SkuPlan *plan, char **given, int ngiven, StringInfo args, const Hold *hold)
{
	InvOutcome	out;
	char	  **locations;
	int			n;
	Candidate  *cands;
	int		   *fill;
	int			nfill;

	ArgsLocations(args, given, ngiven);
	InvArgsText(args, "strategy", StrategyNames[plan->strategy]);
	InvArgsEnd(args);

	InvCheckReady(psprintf("%s()", call));
	/* before SPI: the names must outlive it (the outcome points at one) */
	locations = CandidateLocations(&sku, 1, given, ngiven, &n);
	SPI_connect();
	cands = palloc0(sizeof(Candidate) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		cands[i].sku = sku;
		cands[i].location = locations[i];
		cands[i].rank = i;
	}
	fill = palloc(sizeof(int) * Max(n, 1));
	InvSetOutcome(&out, Allocate(cands, n, PlanSku, plan, call, key, args->data,
								 hold, fill, &nfill), sku, NULL);
	if (strcmp(out.status, INV_INSUFFICIENT) == 0)
	{
		bool		any = false;

		for (int i = 0; i < n; i++)
			any |= cands[i].target.found;
		if (!any)
			out.status = INV_NOT_FOUND;
	}
	if (strcmp(out.status, INV_OK) == 0)
		out.location = ServedFrom(cands, n);
	out.has_available = strcmp(out.status, INV_NOT_FOUND) != 0;
	out.available = TotalAvailable(cands, n);
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
}

PG_FUNCTION_INFO_V1(deduct_any);

/*
 * inventory.deduct_any(sku, qty, key, locations, strategy): take qty units of
 * sku from one or several locations, all or nothing.
 */
Datum
deduct_any(PG_FUNCTION_ARGS)
{
	char	   *sku = InvArgName(fcinfo, 0, "sku");
	SkuPlan		plan;
	char	   *key;
	int			ngiven;
	char	  **given;
	StringInfoData args;

	plan.qty = InvArgQty(fcinfo, 1, "qty");
	key = InvArgName(fcinfo, 2, "key");
	given = GivenLocations(fcinfo, 3, &ngiven);
	plan.strategy = StrategyArg(fcinfo, 4);
	InvArgsBegin(&args);
	InvArgsText(&args, "sku", sku);
	InvArgsInt8(&args, "qty", plan.qty);
	return AllocateSku(fcinfo, "deduct_any", sku, key, &plan, given, ngiven, &args, &sale);
}

PG_FUNCTION_INFO_V1(reserve_any);

/*
 * inventory.reserve_any(sku, qty, key, ttl, locations, strategy): hold qty
 * units of sku at one or several locations until now + ttl, all or nothing;
 * confirm, release and expiry act on every part.
 */
Datum
reserve_any(PG_FUNCTION_ARGS)
{
	char	   *sku = InvArgName(fcinfo, 0, "sku");
	SkuPlan		plan;
	char	   *key;
	Hold		hold;
	int			ngiven;
	char	  **given;
	StringInfoData args;

	plan.qty = InvArgQty(fcinfo, 1, "qty");
	key = InvArgName(fcinfo, 2, "key");
	hold.ttl = InvArgTtl(fcinfo, 3, &hold.expires_at);
	given = GivenLocations(fcinfo, 4, &ngiven);
	plan.strategy = StrategyArg(fcinfo, 5);
	InvArgsBegin(&args);
	InvArgsText(&args, "sku", sku);
	InvArgsInt8(&args, "qty", plan.qty);
	InvArgsText(&args, "ttl", InvIntervalText(hold.ttl));
	return AllocateSku(fcinfo, "reserve_any", sku, key, &plan, given, ngiven, &args, &hold);
}

PG_FUNCTION_INFO_V1(deduct_cart_any);

/*
 * inventory.deduct_cart_any(skus, qtys, key, locations): all lines or none,
 * from as few locations as possible.
 */
Datum
deduct_cart_any(PG_FUNCTION_ARGS)
{
	Datum	   *skus;
	Datum	   *qtys;
	int			nlines;
	int			out_lines = 0;
	int64		total = 0;
	char	   *key;
	int			ngiven;
	char	  **given;
	CartLine   *lines;
	char	  **names;
	StringInfoData args;
	InvOutcome	out;
	char	  **locations;
	int			m;
	Candidate  *cands;
	CartPlan	plan;
	int		   *fill;
	int			nfill;

	nlines = InvArgArray(fcinfo, 0, "skus", TEXTOID, &skus);
	InvCheckSameLength(nlines, InvArgArray(fcinfo, 1, "qtys", INT8OID, &qtys), "qtys");
	key = InvArgName(fcinfo, 2, "key");
	given = GivenLocations(fcinfo, 3, &ngiven);
	if (nlines == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a cart must have at least one line")));

	/* lines of one sku summed, in sku order */
	lines = palloc(sizeof(CartLine) * nlines);
	for (int i = 0; i < nlines; i++)
	{
		lines[i].sku = InvElemName(skus[i], "sku");
		lines[i].qty = DatumGetInt64(qtys[i]);
		InvCheckQty(lines[i].qty, "qty");
		total = InvAddQty(total, lines[i].qty);
	}
	qsort(lines, nlines, sizeof(CartLine), CompareCartLines);
	for (int i = 0; i < nlines; i++)
	{
		if (out_lines > 0 && strcmp(lines[out_lines - 1].sku, lines[i].sku) == 0)
			lines[out_lines - 1].qty = InvAddQty(lines[out_lines - 1].qty, lines[i].qty);
		else
			lines[out_lines++] = lines[i];
	}
	nlines = out_lines;

	InvArgsBegin(&args);
	InvArgsArray(&args, "lines");
	for (int l = 0; l < nlines; l++)
	{
		InvArgsItem(&args);
		InvArgsText(&args, "sku", lines[l].sku);
		InvArgsInt8(&args, "qty", lines[l].qty);
		InvArgsEnd(&args);
	}
	appendStringInfoChar(&args, ']');
	ArgsLocations(&args, given, ngiven);
	InvArgsEnd(&args);

	InvCheckReady("deduct_cart_any()");
	names = palloc(sizeof(char *) * nlines);
	for (int l = 0; l < nlines; l++)
		names[l] = lines[l].sku;
	/* before SPI: the names must outlive it (the outcome points at one) */
	locations = CandidateLocations(names, nlines, given, ngiven, &m);
	SPI_connect();
	cands = palloc0(sizeof(Candidate) * Max(nlines * m, 1));
	for (int l = 0; l < nlines; l++)
		for (int j = 0; j < m; j++)
		{
			Candidate  *c = &cands[l * m + j];

			c->sku = lines[l].sku;
			c->location = locations[j];
			c->rank = j;
		}
	plan.lines = lines;
	plan.nlines = nlines;
	plan.m = m;
	fill = palloc(sizeof(int) * Max(nlines * m, 1));
	InvSetOutcome(&out, Allocate(cands, nlines * m, PlanCart, &plan, "deduct_cart_any",
								 key, args.data, &sale, fill, &nfill), NULL, NULL);
	if (strcmp(out.status, INV_OK) == 0)
		out.location = ServedFrom(cands, nlines * m);
	else if (strcmp(out.status, INV_INSUFFICIENT) == 0)
	{
		/* the first line that every candidate together cannot serve */
		for (int l = 0; l < nlines; l++)
		{
			bool		any = false;
			int64		sum = 0;

			for (int j = 0; j < m; j++)
			{
				any |= cands[l * m + j].target.found;
				if (pg_add_s64_overflow(sum, cands[l * m + j].available, &sum))
					sum = PG_INT64_MAX;
			}
			if (!any || sum < lines[l].qty)
			{
				InvSetOutcome(&out, any ? INV_INSUFFICIENT : INV_NOT_FOUND, lines[l].sku, NULL);
				out.has_available = any;
				out.available = sum;
				break;
			}
		}
	}
	SPI_finish();
	return InvReturnOutcome(fcinfo, &out);
}

/* reserve_cart's plan: every line (one candidate each) gives all its units. */
static bool
PlanLines(Candidate *cands, int n, const void *arg, int *fill, int *nfill)
{
	const int64 *qtys = arg;

	*nfill = n;
	for (int i = 0; i < n; i++)
	{
		fill[i] = i;
		cands[i].part = qtys[i];
	}
	for (int i = 0; i < n; i++)
		if (cands[i].available < qtys[i])
		{
			for (int j = 0; j < n; j++)
				cands[j].part = 0;
			return false;
		}
	return true;
}

/*
 * Hold the lines of a cart (stock rows skus[i] at locations[i], in the
 * canonical order, each row once) until expires_at, all or none, as one
 * reservation under key with a part per line (reserve_cart): an
 * allocation (Allocate) with no choice to make.  Returns the
 * status; *failed gets the line that decided a refusal (or -1), available[]
 * each line's units available afterwards.
 */
const char *
InvReserveLines(char **skus, char **locations, int64 *qtys, int n, const char *key,
				const char *args, Interval *ttl, TimestampTz expires_at,
				int64 *available, int *failed)
{
	Candidate  *cands = palloc0(sizeof(Candidate) * n);
	int		   *fill = palloc(sizeof(int) * n);
	int			nfill;
	Hold		hold = {ttl, expires_at};
	const char *status;

	for (int i = 0; i < n; i++)
	{
		cands[i].sku = skus[i];
		cands[i].location = locations[i];
		cands[i].rank = i;
	}
	status = Allocate(cands, n, PlanLines, qtys, "reserve_cart", key, args, &hold,
					  fill, &nfill);
	*failed = -1;
	for (int i = 0; i < n; i++)
	{
		available[i] = cands[i].available;
		if (*failed < 0 && strcmp(status, INV_INSUFFICIENT) == 0 &&
			(!cands[i].target.found || cands[i].available < qtys[i]))
			*failed = i;
	}
	if (*failed >= 0 && !cands[*failed].target.found)
		status = INV_NOT_FOUND;
	return status;
}

PG_FUNCTION_INFO_V1(allocation);

/*
 * inventory.allocation(key): where the units of an applied call came from,
 * one row per stock row in the order they were taken.
 */
Datum
allocation(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *key = InvArgName(fcinfo, 0, "key");
	Datum		values[1] = {CStringGetTextDatum(key)};

	InvCheckReady(NULL);
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	InvRunLatest(&Allocation, values, NULL, 0);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		Datum		row[3];
		bool		nulls[3] = {0};

		row[0] = CStringGetTextDatum(InvResultText((int) r, 1));
		row[1] = CStringGetTextDatum(InvResultText((int) r, 2));
		row[2] = Int64GetDatum(InvResultInt8((int) r, 3));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
