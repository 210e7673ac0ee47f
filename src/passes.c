/*
 * passes.c
 *	  The two jobs of the background worker, over every row that needs
 *	  them: merging hot rows' queues into their stock rows, and expiring
 *	  reservations past their ttl.  The worker (worker.c) runs them on its
 *	  schedule, and admins run them now with inventory.merge() and
 *	  inventory.expire(); both call down into this file, which calls down
 *	  into the pipeline (movement.c) for each row.
 */
#include "postgres.h"

#include "miscadmin.h"

#include "inventory.h"

static InvQuery QueuedRows = {
	"SELECT DISTINCT sku, location FROM inventory.pending",
	0, {InvalidOid}
};

static InvQuery OverdueRows = {
	"SELECT DISTINCT sku, location FROM inventory.reservation "
	"WHERE state = 'held' AND expires_at <= statement_timestamp()",
	0, {InvalidOid}
};

/* One row of a merge pass, run in its own subtransaction. */
typedef struct MergeRowWork
{
	InvRowRef  *row;
	bool		nowait;
	bool		merged;			/* out: the lock was had and the row merged */
	int64		moved;			/* out: movements folded */
} MergeRowWork;

/* Merge one row's queue under its lock (share mode: writers go on). */
static void
MergeOneRow(void *arg)
{
	MergeRowWork *work = (MergeRowWork *) arg;

	if (!InvLockRowShared(work->row->sku, work->row->location, work->nowait))
		return;
	work->moved = InvMerge(work->row->sku, work->row->location);
	work->merged = true;
}

/*
 * Merge the queue of every row that has one, in the current transaction,
 * each under its row lock taken in canonical order (with nowait, busy rows
 * are left for the next pass).  Each row is merged in a subtransaction of
 * its own, so a row that fails (reported with a WARNING) holds up no other.
 */
void
InvMergePass(bool nowait, InvMergeResult *result)
{
	int			n;
	InvRowRef  *queued = InvRowsInLockOrder(&QueuedRows, &n);

	memset(result, 0, sizeof(*result));
	for (int i = 0; i < n; i++)
	{
		MergeRowWork work = {&queued[i], nowait, false, 0};
		char	   *error;

		CHECK_FOR_INTERRUPTS();
		error = InvTryInSubxact(MergeOneRow, &work);
		if (error != NULL)
		{
			ereport(WARNING,
					(errmsg("inventory: could not merge the queue of stock row (%s, %s): %s",
							queued[i].sku, queued[i].location, error),
					 errhint("The row's movements stay queued; other rows were merged.")));
			result->failed++;
			result->last_error = psprintf("row (%s, %s): %s",
										  queued[i].sku, queued[i].location, error);
			continue;
		}
		if (work.merged)
		{
			result->rows++;
			result->moved += work.moved;
		}
	}
}

/*
 * Expire the overdue holds of every row that has some, up to batch per row,
 * in the current transaction, taking each row's lock in canonical order.
 * With nowait, rows whose lock is busy are skipped.  Returns how many.
 */
int64
InvExpirePass(int64 batch, bool nowait)
{
	int64		total = 0;
	int			n;
	InvRowRef  *rows = InvRowsInLockOrder(&OverdueRows, &n);

	for (int i = 0; i < n; i++)
	{
		InvTarget	target;
		int64		count;

		if (!InvOpen(&target, rows[i].sku, rows[i].location, nowait ? INV_NOWAIT : 0))
			continue;
		InvExpireOverdue(&target, batch, &count);
		total += count;
	}
	InvNotifyExpired(total);
	return total;
}

