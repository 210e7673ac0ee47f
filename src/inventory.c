/*
 * inventory.c
 *	  Entry point of the inventory extension: correct, fast stock deduction
 *	  inside PostgreSQL.
 *
 * The design and its invariants are described in README.md; each module's
 * file starts with the part of the design it implements (see inventory.h).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "inventory.h"
#include "hot.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Module initialisation: shared memory, the transaction callbacks of the hot
 * path, and the background worker; settings under the reserved prefix.
 */
void
_PG_init(void)
{
	InvShmemInit();
	InvRowLockInit();
	/* callbacks run newest first: the hot path's must run before merged mode's */
	InvMergedCallbacks();
	HotInit();
	InvMergedInit();
	InvWorkerInit();
	InvDatabasesInit();
	InvAutoHotInit();
	InvEventsInit();
	MarkGUCPrefixReserved("inventory");
}
