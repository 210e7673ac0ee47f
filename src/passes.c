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

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "inventory.h"
#include "hot.h"

/* This backend's transaction counts in InvState->archiving. */
static bool Archiving = false;

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


/*
 * Archiving.  Ledger rows older than the cutoff are folded, a batch at a
 * time, oldest first: they are deleted, together with the older checkpoint
 * of each stock row they move, and one new checkpoint per stock row (op
 * "checkpoint") carries their sums, so every counter is still the sum of
 * its ledger rows (invariant 2).  The keys of the calls those rows recorded
 * (their call rows) go to inventory.archived_key as digests, in the same
 * statement's transaction, so a retry of an archived key still finds it
 * (keys.c).  Nothing here takes a stock row's lock: sales go on.
 *
 * What stays, because a later call still reads it:
 * - the rows of a reservation still held (its confirm or release);
 * - a refund's rows while its sale's call row is there: what a sale may
 *	 still refund is what it sold less its refunds' rows, so a refund folded
 *	 before its sale would be refunded again.  Once the sale's call row is
 *	 folded, a refund of it answers not_found, and its refunds follow in the
 *	 next batch (a statement sees the rows it deletes);
 * - a concluded reservation while its call row is there: a retry of the
 *	 reserve compares its ttl.  It goes once its call row has.
 */
static InvQuery FoldLedger = {
	"WITH f AS (DELETE FROM inventory.ledger WHERE id IN ("
	"             SELECT l.id FROM inventory.ledger l "
	"              WHERE l.at < $1 AND l.op <> 'checkpoint' "
	"                AND NOT EXISTS (SELECT FROM inventory.reservation r "
	"                                 WHERE r.key = l.key AND r.state = 'held') "
	"                AND (l.op <> 'refund' OR NOT EXISTS "
	"                       (SELECT FROM inventory.ledger s "
	"                         WHERE s.key = l.ref AND s.call IS NOT NULL)) "
	"              ORDER BY l.id LIMIT $2) "
	"           RETURNING key, call, sku, location, on_hand_delta, reserved_delta, at), "
	"     c AS (DELETE FROM inventory.ledger l "
	"            WHERE l.op = 'checkpoint' AND l.at < $1 "
	"              AND (l.sku, l.location) IN (SELECT sku, location FROM f) "
	"           RETURNING sku, location, on_hand_delta, reserved_delta, at), "
	"     n AS (INSERT INTO inventory.ledger (op, key, sku, location, on_hand_delta, reserved_delta, at) "
	"           SELECT 'checkpoint', 'checkpoint', sku, location, sum(on_hand_delta), "
	"                  sum(reserved_delta), max(at) "
	"             FROM (SELECT sku, location, on_hand_delta, reserved_delta, at FROM f "
	"                   UNION ALL SELECT * FROM c) m "
	"            WHERE sku IS NOT NULL GROUP BY sku, location) "
	"SELECT key, call IS NOT NULL FROM f",
	2, {TIMESTAMPTZOID, INT8OID}
};

/* One new row of level 0 per bucket, with the batch's digests of it. */
static InvQuery AddDigests = {
	"INSERT INTO inventory.archived_key (bucket, level, digests) "
	"SELECT b, 0, string_agg(d, ''::bytea) FROM unnest($1::integer[], $2::bytea[]) AS u(b, d) "
	"GROUP BY b",
	2, {INT4ARRAYOID, BYTEAARRAYOID}
};

/* Four rows of one level of a bucket merge into one of the next level. */
static InvQuery MergeDigests = {
	"WITH g AS (SELECT bucket, level FROM inventory.archived_key "
	"            WHERE bucket = ANY($1) GROUP BY bucket, level HAVING count(*) >= 4), "
	"     d AS (DELETE FROM inventory.archived_key a USING g "
	"            WHERE a.bucket = g.bucket AND a.level = g.level "
	"        RETURNING a.bucket, a.level, a.digests) "
	"INSERT INTO inventory.archived_key (bucket, level, digests) "
	"SELECT bucket, level + 1, string_agg(digests, ''::bytea) FROM d GROUP BY bucket, level",
	1, {INT4ARRAYOID}
};

static InvQuery DropReservations = {
	"DELETE FROM inventory.reservation WHERE ctid = ANY (ARRAY("
	"  SELECT r.ctid FROM inventory.reservation r "
	"   WHERE r.state <> 'held' AND r.created_at < $1 "
	"     AND NOT EXISTS (SELECT FROM inventory.ledger l "
	"                      WHERE l.key = r.key AND l.call IS NOT NULL) "
	"   LIMIT $2))",
	2, {TIMESTAMPTZOID, INT8OID}
};

/*
 * Manifests of carts across shards (inventory_proxy) that ended before
 * the cutoff: a retry that late finds its attempts' keys archived anyway.
 */
static InvQuery DropManifests = {
	"DELETE FROM inventory.cart_manifest WHERE ctid = ANY (ARRAY("
	"  SELECT m.ctid FROM inventory.cart_manifest m "
	"   WHERE m.state NOT IN ('pending', 'holding', 'held', 'confirming') AND m.touched_at < $1 LIMIT $2))",
	2, {TIMESTAMPTZOID, INT8OID}
};

/* The transaction has ended: it archives no more. */
static void
ArchivingXactCallback(XactEvent event, void *arg)
{
	if (Archiving && (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
					  event == XACT_EVENT_PARALLEL_COMMIT ||
					  event == XACT_EVENT_PARALLEL_ABORT))
	{
		pg_atomic_fetch_sub_u32(&InvState->archiving, 1);
		Archiving = false;
	}
}

/*
 * Count this transaction among those that archive until it ends, before
 * it deletes a call row (see InvArchiveRunning).  The callback is
 * registered once per backend, by the first archiving transaction.
 */
static void
ArchivingBegins(void)
{
	static bool registered = false;

	if (Archiving)
		return;
	if (!registered)
	{
		RegisterXactCallback(ArchivingXactCallback, NULL);
		registered = true;
	}
	pg_atomic_fetch_add_u32(&InvState->archiving, 1);
	Archiving = true;
}

/*
 * Could a transaction be deleting call rows of archived keys now (in any
 * database)?  Only then does InvKeyInArchiving look a key up.
 */
bool
InvArchiveRunning(void)
{
	return pg_atomic_read_u32(&InvState->archiving) > 0;
}

/* The key of the archiving job: one runs at a time (worker or archive()). */
#define ARCHIVE_LOCK_NAME "inventory archive"

/*
 * One batch of archiving, in the current transaction: up to batch ledger
 * rows, batch concluded reservations and batch finished cart manifests
 * before the cutoff (*reservations: the two last dropped).  Returns the
 * ledger rows folded; archiving is done when a batch folds and drops
 * nothing (a batch may free rows for the next, see FoldLedger).
 */
int64
InvArchiveBatch(TimestampTz before, int64 batch, int64 *reservations)
{
	Datum		values[2] = {TimestampTzGetDatum(before), Int64GetDatum(batch)};
	int64		folded;
	int			nkeys = 0;
	Datum	   *buckets;
	Datum	   *digests;

	InvLockRow(ARCHIVE_LOCK_NAME, "", false);
	ArchivingBegins();
	InvRun(&FoldLedger, values, NULL, 0);
	folded = (int64) SPI_processed;
	buckets = palloc(sizeof(Datum) * Max(folded, 1));
	digests = palloc(sizeof(Datum) * Max(folded, 1));
	for (int64 i = 0; i < folded; i++)
	{
		bytea	   *d;

		if (!InvResultBool((int) i, 2))
			continue;			/* not a call row */
		d = palloc(VARHDRSZ + 16);
		SET_VARSIZE(d, VARHDRSZ + 16);
		InvKeyDigest(InvResultText((int) i, 1), (uint8 *) VARDATA(d));
		buckets[nkeys] = Int32GetDatum(InvDigestBucket((uint8 *) VARDATA(d)));
		digests[nkeys++] = PointerGetDatum(d);
	}
	if (nkeys > 0)
	{
		Datum		arrays[2] = {
			PointerGetDatum(construct_array(buckets, nkeys, INT4OID, 4, true, TYPALIGN_INT)),
			PointerGetDatum(construct_array(digests, nkeys, BYTEAOID, -1, false, TYPALIGN_INT))
		};

		InvRun(&AddDigests, arrays, NULL, 0);
		do
			InvRun(&MergeDigests, arrays, NULL, 0);
		while (SPI_processed > 0);
	}
	InvRun(&DropReservations, values, NULL, 0);
	*reservations = (int64) SPI_processed;
	if (OidIsValid(InvTableOid("cart_manifest")))	/* 1.2 */
	{
		InvRun(&DropManifests, values, NULL, 0);
		*reservations += (int64) SPI_processed;
	}
	return folded;
}
