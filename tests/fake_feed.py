"""A stateful VTEX feed behind `responses`: items, handles and commits, for intake tests."""
import json
import re

BASE = "https://teststore.vtexcommercestable.com.br"


def feed_item(order_id, state="ready-for-handling", *, event_id=None, handle=None, change="2026-11-27T10:00:00.1234567Z", last_state="window-to-cancel"):
    return {
        "eventId": event_id or f"EV-{order_id}-{state}",
        "handle": handle or f"handle-{order_id}-{state}-{event_id or ''}",
        "domain": "Fulfillment", "state": state, "lastState": last_state, "orderId": order_id,
        "lastChange": "2026-11-27T09:59:00.0000000Z", "currentChange": change,
    }


class FakeFeed:
    def __init__(self, rsps, base=BASE):
        self.items = []           # not yet committed, in delivery order
        self.committed = []       # every handle committed, in order
        self.commit_failures = 0  # answer 500 to this many commits
        self.on_commit = None     # callback(handles) run before the commit is accepted
        # False: a failed commit's items are offered again at once; True: only at expire_visibility(),
        # as VTEX does after the visibility timeout (a retrieve in flight meanwhile finds them hidden).
        self.hold_failed_commits = False
        self.retrieve_calls = 0
        self.commit_calls = 0
        self.refuse_retrieves = set()  # these retrieve calls (1 = the first) are answered 429, nothing handed out
        self._hidden = {}         # retrieved, not committed: handle -> item
        rsps.add_callback("GET", f"{base}/api/orders/feed", callback=self._retrieve)
        rsps.add_callback("POST", f"{base}/api/orders/feed", callback=self._commit)

    def add(self, *items):
        self.items.extend(items)

    def expire_visibility(self):
        """The visibility timeout passes: every item retrieved and not committed is offered again."""
        self.items.extend(self._hidden.values())
        self._hidden.clear()

    def _retrieve(self, request):
        self.retrieve_calls += 1
        if self.retrieve_calls in self.refuse_retrieves:
            return 429, {"Retry-After": "1"}, "Too Many Requests"
        maxlot = int(re.search(r"maxlot=(\d+)", request.url).group(1))
        # Like SQS: retrieved items stay until committed (visibility is not modelled here).
        batch = self.items[:maxlot]
        self.items = self.items[maxlot:]
        self._hidden.update((i["handle"], i) for i in batch if isinstance(i, dict) and isinstance(i.get("handle"), str))
        return 200, {}, json.dumps(batch)

    def _commit(self, request):
        handles = json.loads(request.body)["handles"]
        self.commit_calls += 1
        if self.on_commit:
            self.on_commit(handles)
        if self.commit_failures:
            self.commit_failures -= 1
            # Not committed: VTEX offers them again after the visibility timeout.
            if not self.hold_failed_commits:
                self.items.extend(self._hidden.pop(h) for h in handles if h in self._hidden)
            return 500, {}, "internal error"
        for handle in handles:
            self._hidden.pop(handle, None)
        self.committed.extend(handles)
        return 200, {}, ""
