/*
 * events.c
 *	  Announcements of changes on a NOTIFY channel, for those allowed to hear.
 *
 * NOTIFY is transactional: a notification is delivered to listeners when
 * (and only if) the transaction that raised it commits, and identical
 * notifications of one transaction are sent once.  Payloads are JSON:
 *
 *	 {"event": "sold_out", "sku": "a", "location": "default", "available": 0}
 *	 {"event": "back_in_stock", "sku": "a", "location": "default", "available": 5}
 *	 {"event": "expired", "count": 120}
 *
 * "sold_out" when a movement takes a row's available units to zero, and
 * "back_in_stock" when one brings them up from zero; "expired" for each batch
 * of reservations an expiry pass (the worker's or expire()) released.
 *
 * Any role that can connect may LISTEN on any channel, and NOTIFY on it, so
 * events name skus and stock levels only when a superuser turns them on
 * (inventory.events), on a channel a superuser chooses and only superusers
 * can read from the settings (inventory.events_channel): a role that does not
 * know the channel can neither hear nor forge them.  A listener can also
 * check a notification's sender, whose PID every notification carries, in
 * pg_stat_activity.
 */
#include "postgres.h"

#include "commands/async.h"
#include "lib/stringinfo.h"
#include "utils/guc.h"

#include "inventory.h"

static bool EventsOn = false;
static char *EventsChannel = NULL;

/* A channel name must be a non-empty identifier NOTIFY accepts. */
static bool
CheckChannel(char **newval, void **extra, GucSource source)
{
	if (**newval == '\0' || strlen(*newval) >= NAMEDATALEN)
	{
		GUC_check_errdetail("A channel name must be between 1 and %d bytes long.",
							NAMEDATALEN - 1);
		return false;
	}
	return true;
}

/* Define inventory.events and inventory.events_channel (from _PG_init). */
void
InvEventsInit(void)
{
	DefineCustomBoolVariable("inventory.events",
							 "Announce sold-out, back-in-stock and expiry events with NOTIFY.",
							 NULL,
							 &EventsOn,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("inventory.events_channel",
							   "NOTIFY channel of the inventory events.",
							   "Only superusers can read it: choose a name that is hard to guess.",
							   &EventsChannel,
							   "inventory_events",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   CheckChannel, NULL, NULL);
}

/* Announce a row crossing zero available units, if it did. */
void
InvNotifyLevel(const char *sku, const char *location, int64 before, int64 after)
{
	StringInfoData payload;

	if (!EventsOn)
		return;
	if (before > 0 && after <= 0)
	{
		InvArgsBegin(&payload);
		InvArgsText(&payload, "event", "sold_out");
	}
	else if (before <= 0 && after > 0)
	{
		InvArgsBegin(&payload);
		InvArgsText(&payload, "event", "back_in_stock");
	}
	else
		return;
	InvArgsText(&payload, "sku", sku);
	InvArgsText(&payload, "location", location);
	InvArgsInt8(&payload, "available", after);
	InvArgsEnd(&payload);
	Async_Notify(EventsChannel, payload.data);
}

/* Announce a batch of expired reservations. */
void
InvNotifyExpired(int64 count)
{
	StringInfoData payload;

	if (!EventsOn || count <= 0)
		return;
	InvArgsBegin(&payload);
	InvArgsText(&payload, "event", "expired");
	InvArgsInt8(&payload, "count", count);
	InvArgsEnd(&payload);
	Async_Notify(EventsChannel, payload.data);
}
