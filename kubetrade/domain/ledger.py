"""Our orders as the engine knows them: the open ones, why each was placed, the client
order ids they get, and the trade ids already booked (so a re-delivered fill is not
booked twice)."""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

from kubetrade.domain.models import Order, Side, from_dict, make_client_order_id, to_dict

SEEN_TRADES_KEPT = 2_000
REASONS_KEPT = 500


class OrderLedger:
    """Open orders by client id, their reasons, the id sequence and the seen trade ids."""

    __slots__ = (
        "_seen", "_seen_order", "id_source", "open", "reasons", "seq", "seq_ts", "strategy",
    )

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy
        #: What client order ids derive from when it differs from ``strategy``.
        self.id_source: str | None = None
        self.open: dict[str, Order] = {}
        self.reasons: OrderedDict[str, str] = OrderedDict()
        self.seq_ts = -1
        self.seq = 0
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()

    def next_id(self, ts_ms: int) -> str:
        """A deterministic client order id for an order decided at ``ts_ms``, unique
        among the orders this ledger remembers."""
        if ts_ms == self.seq_ts:
            self.seq += 1
        else:
            self.seq_ts = ts_ms
            self.seq = 0
        source = self.id_source or self.strategy
        cid = make_client_order_id(source, ts_ms, self.seq)
        while cid in self.reasons or cid in self.open:
            self.seq += 1
            cid = make_client_order_id(source, ts_ms, self.seq)
        return cid

    def add(self, order: Order, reason: str) -> None:
        """A new order of ours, placed for ``reason`` (stop_loss, signal, close_all)."""
        cid = order.client_order_id
        self.open[cid] = order
        self.reasons[cid] = reason
        if len(self.reasons) > REASONS_KEPT:
            self.reasons.popitem(last=False)

    def pending(self, symbol: str) -> Order | None:
        """An open order on ``symbol``, if any."""
        for o in self.open.values():
            if o.symbol == symbol:
                return o
        return None

    def exiting(self, symbol: str) -> bool:
        """Whether a sell of ``symbol`` is already on its way."""
        return any(o.symbol == symbol and o.side is Side.SELL for o in self.open.values())

    def entries_not_held(self, held: dict[str, Any]) -> int:
        """Symbols with an open buy and no position in ``held`` (entries in flight)."""
        entering = {
            o.symbol for o in self.open.values() if o.side is Side.BUY and o.symbol not in held
        }
        return len(entering)

    def seen(self, trade_id: str) -> bool:
        return trade_id in self._seen

    def remember(self, trade_id: str) -> None:
        """A fill booked; the oldest of more than SEEN_TRADES_KEPT ids is forgotten."""
        self._seen.add(trade_id)
        self._seen_order.append(trade_id)
        if len(self._seen_order) > SEEN_TRADES_KEPT:
            self._seen.discard(self._seen_order.popleft())

    def snapshot_orders(self) -> dict[str, Any]:
        """The snapshot's ``open_orders``, ``reasons`` and ``seen_trades``."""
        return {
            "open_orders": [to_dict(o) for o in self.open.values()],
            "reasons": list(self.reasons.items()),
            "seen_trades": list(self._seen_order),
        }

    def snapshot_seq(self) -> dict[str, Any]:
        """The snapshot's ``seq_ts`` and ``seq``."""
        return {"seq_ts": self.seq_ts, "seq": self.seq}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Take back orders, reasons, seen trade ids and the id sequence."""
        self.open = {
            o["client_order_id"]: from_dict(Order, o) for o in snapshot.get("open_orders", [])
        }
        self.reasons = OrderedDict((k, v) for k, v in snapshot.get("reasons", []))
        self._seen_order = deque(snapshot.get("seen_trades", []))
        self._seen = set(self._seen_order)
        self.seq_ts = int(snapshot.get("seq_ts", -1))
        self.seq = int(snapshot.get("seq", 0))


__all__ = ["REASONS_KEPT", "SEEN_TRADES_KEPT", "OrderLedger"]
