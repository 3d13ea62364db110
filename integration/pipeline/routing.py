"""Routing: a new inbox event, matched against its store's rules, becomes OrderSyncs."""
from collections import defaultdict

from django.db import transaction
from django.db.models.functions import Now

from integration.models import ANY_STATE, Account, FeedEvent, Order, OrderSync, RuleAction
from integration.vtex.statuses import CANCELED_STATES


def route_events(account, events):
    """Create the syncs the store's rules ask for. Runs inside the storing transaction.

    A batch costs a fixed handful of queries (orders created and read together, syncs created
    in one insert), not a few per event.
    """
    if not events:
        return 0
    rules = defaultdict(set)
    for state, action in account.rules.values_list("state", "action"):
        rules[state].add(action)
    bindings = [b for b in account.bindings.filter(enabled=True)]
    takes = {action: [b for b in bindings if b.takes(action)] for action in (RuleAction.SEND, RuleAction.CANCEL, RuleAction.STATUS)}
    any_state = rules.pop(ANY_STATE, set())  # rules for every event, whatever its state
    # A cancellation first: a send must never be routed for an order known to be canceled,
    # even when the two events come in one batch in the wrong order.
    ordered = sorted(events, key=lambda e: (e.state not in CANCELED_STATES, e.current_change or e.last_change))
    relevant = [e for e in ordered if any_state or rules.get(e.state) or e.state in CANCELED_STATES]
    if relevant:
        order_ids = list(dict.fromkeys(e.order_id for e in relevant))
        # The unique (account, order id) constraint makes creating a known order a no-op.
        Order.objects.bulk_create([Order(account=account, order_id=oid) for oid in order_ids], ignore_conflicts=True)
        # Only what routing reads: a known order's snapshot (VTEX's JSON, 8 KB) was decoded here
        # for every later event of it, and read by nothing.
        orders = {o.order_id: o for o in Order.objects.filter(account=account, order_id__in=order_ids)
                  .only("pk", "order_id", "canceled", "outside_scope_reason")}
        newly_canceled = []
        for event in relevant:
            order = orders[event.order_id]
            if event.state in CANCELED_STATES and not order.canceled:
                order.canceled = True
                newly_canceled.append(order.pk)
        if newly_canceled:
            Order.objects.filter(pk__in=newly_canceled).update(canceled=True)
        # Which bindings each order was sent to, for the cancel actions (sends routed in this
        # batch do not count: a cancel sorts before them, as it did event by event).
        cancel_orders = {orders[e.order_id].pk for e in relevant if RuleAction.CANCEL in rules.get(e.state, ())}
        sent_to = defaultdict(set)
        if cancel_orders:
            for order_pk, binding_pk in OrderSync.objects.filter(order_id__in=cancel_orders, action=RuleAction.SEND).values_list("order_id", "binding_id"):
                sent_to[order_pk].add(binding_pk)
        new_syncs = []
        for event in relevant:
            order = orders[event.order_id]
            if not account.takes_domain(event.domain) or order.outside_scope_reason:
                # Not this store's to fulfil: an event of a domain it does not take, or an order
                # dispatch found to be another seller's. Kept and committed; it routes nothing
                # (the canceled marker above still counts: it is a fact about the order).
                continue
            actions = rules.get(event.state, set()) | any_state
            if (RuleAction.SEND in actions or RuleAction.SEND_WHEN_READY in actions) and not order.canceled:
                wait = RuleAction.SEND_WHEN_READY in actions
                new_syncs += [OrderSync(order=order, binding=b, action=RuleAction.SEND, wait_for_ready=wait, next_attempt_at=Now())
                              for b in takes[RuleAction.SEND]]
            if RuleAction.CANCEL in actions:
                new_syncs += [
                    OrderSync(order=order, binding=b, action=RuleAction.CANCEL, next_attempt_at=Now())
                    for b in takes[RuleAction.CANCEL] if b.pk in sent_to[order.pk]
                ]
            if RuleAction.STATUS in actions:
                new_syncs += [
                    OrderSync(order=order, binding=b, action=RuleAction.STATUS, state=event.state, next_attempt_at=Now())
                    for b in takes[RuleAction.STATUS]
                ]
        if new_syncs:
            # The unique (order, action, binding, state) constraint makes a duplicate create nothing.
            OrderSync.objects.bulk_create(new_syncs, ignore_conflicts=True)
        created = len(new_syncs)
    else:
        created = 0
    FeedEvent.objects.filter(pk__in=[e.pk for e in events]).update(routed_at=Now())
    return created


def sweep_unrouted(limit=500):
    """Route events stored but never routed (an older version, or a crash between steps)."""
    done = 0
    for account in Account.objects.filter(events__routed_at__isnull=True).distinct():
        with transaction.atomic():
            events = list(FeedEvent.objects.filter(account=account, routed_at__isnull=True).order_by("id")[:limit])
            route_events(account, events)
            done += len(events)
    return done
