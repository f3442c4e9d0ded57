"""Every Redis key and channel kubetrade uses, in one place.

Components never spell a key themselves; they ask ``Keys``. The prefix lets several
installations (or test cases) share one Redis without seeing each other.

Layout (``{p}`` is the prefix, ``{s}`` a strategy name):

==========================================  =======  ===============================================
key                                         type     holds
==========================================  =======  ===============================================
{p}:strategies                              set      names of strategies that have state
{p}:strategy:{s}:engine                     string   JSON snapshot of the engine (portfolio, risk,
                                                     tracker), written in the same MULTI as orders
{p}:strategy:{s}:orders                     hash     client_order_id -> order JSON (every order the
                                                     runner created, terminal ones included)
{p}:strategy:{s}:positions                  hash     symbol -> position JSON
{p}:strategy:{s}:fills                      set      exchange trade ids applied (idempotence)
{p}:strategy:{s}:trades                     stream   closed trades of this strategy
{p}:strategy:{s}:equity                     stream   fields ts, equity
{p}:strategy:{s}:summary                    hash     phase, equity, pnl, trades, win_rate, ... (the
                                                     operator folds it into the Strategy status)
{p}:strategy:{s}:reconciliation             string   JSON of the latest reconciliation result
{p}:strategy:{s}:paper                      string   JSON snapshot of the paper broker (paper mode)
{p}:strategy:{s}:cursor                     hash     symbol -> open time of the last candle done
{p}:strategy:{s}:baseline                   string   JSON of the reconciliation baseline
{p}:strategy:{s}:instance                   string   JSON {id, host, pid, started_ms} of the one
                                                     runner that trades it (the last started;
                                                     every commit of another one is refused)
{p}:trades                                  stream   closed trades of all strategies (API pages it)
{p}:audit                                   stream   ts, actor, action, strategy, detail (JSON)
{p}:alerts                                  stream   alerts; consumer group ``notify`` sends them
{p}:emergency                               hash     action, since_ms, by, reason
{p}:emergency:acks                          hash     runner -> JSON {action, ts_ms, cancelled}
{p}:preflight                               string   JSON of the latest pre-flight report
{p}:validation:latest                       string   JSON summary of the latest validation report
{p}:desired:strategies                      hash     name -> Strategy manifest JSON (local mode)
{p}:desired:riskpolicies                    hash     name -> RiskPolicy manifest JSON (local mode)
{p}:desired:last-applied                    hash     "Kind/name" -> JSON of the spec fields the
                                                     files set at the last start (local mode's
                                                     three-way merge, as kubectl's
                                                     last-applied-configuration)
{p}:auth:revoked:{jti}                      string   present = token revoked (TTL = token lifetime)
{p}:auth:refresh:{family}                   string   live refresh jti of a login (rotation, reuse)
{p}:auth:login:{client}                     string   failed-login counter (TTL 60 s)
{p}:notify:sent:{alert id}                  string   "sending"/"sent" mark of one alert (TTL 7 d)
{p}:notify:emergency-announced              string   last emergency change turned into an alert
{p}:budget:{scope}:{kind}:{window}:{n}      string   rate budget spent in window n (state/budgets)
{p}:budget:{scope}:paused                   string   present = every client waits (Retry-After)
{p}:lease:{name}                            string   holder's token of a writer lease (state/leases)
{p}:account:{a}:{part}                      various  one exchange account's books (state/accounts)
==========================================  =======  ===============================================

Pub/sub channels: ``{p}:events`` (dashboard events, JSON with a ``type``) and
``{p}:emergency:changes`` (emergency action changes, so runners halt without polling).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_PREFIX = "kt"
ALERTS_GROUP = "notify"


def default_prefix() -> str:
    return os.environ.get("KUBETRADE_REDIS_PREFIX", DEFAULT_PREFIX)


@dataclass(frozen=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    # -- per strategy -------------------------------------------------------------
    def lease(self, name: str) -> str:
        """A writer lease (``candles:binance:BTC/USDT:1m``: who records that series)."""
        return f"{self.prefix}:lease:{name}"

    def budget(self, scope: str, part: str) -> str:
        """A shared rate budget's key: ``scope`` is ``ip:<egress>`` or ``account:<id>``."""
        return f"{self.prefix}:budget:{scope}:{part}"

    def account(self, account: str, part: str) -> str:
        """One part of an exchange account's shared books (``state/accounts.py``)."""
        return f"{self.prefix}:account:{account}:{part}"

    def strategy(self, name: str, part: str) -> str:
        return f"{self.prefix}:strategy:{name}:{part}"

    def engine(self, name: str) -> str:
        return self.strategy(name, "engine")

    def orders(self, name: str) -> str:
        return self.strategy(name, "orders")

    def positions(self, name: str) -> str:
        return self.strategy(name, "positions")

    def fills_seen(self, name: str) -> str:
        return self.strategy(name, "fills")

    def strategy_trades(self, name: str) -> str:
        return self.strategy(name, "trades")

    def equity(self, name: str) -> str:
        return self.strategy(name, "equity")

    def summary(self, name: str) -> str:
        return self.strategy(name, "summary")

    def reconciliation(self, name: str) -> str:
        return self.strategy(name, "reconciliation")

    def paper_broker(self, name: str) -> str:
        return self.strategy(name, "paper")

    def runner_instance(self, name: str) -> str:
        return self.strategy(name, "instance")

    def candle_cursor(self, name: str) -> str:
        return self.strategy(name, "cursor")

    def reconciliation_baseline(self, name: str) -> str:
        return self.strategy(name, "baseline")

    # -- global -------------------------------------------------------------------
    @property
    def strategies(self) -> str:
        return f"{self.prefix}:strategies"

    @property
    def trades(self) -> str:
        return f"{self.prefix}:trades"

    @property
    def audit(self) -> str:
        return f"{self.prefix}:audit"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}:alerts"

    @property
    def emergency(self) -> str:
        return f"{self.prefix}:emergency"

    @property
    def emergency_acks(self) -> str:
        return f"{self.prefix}:emergency:acks"

    @property
    def preflight(self) -> str:
        return f"{self.prefix}:preflight"

    @property
    def validation_latest(self) -> str:
        return f"{self.prefix}:validation:latest"

    @property
    def desired_strategies(self) -> str:
        return f"{self.prefix}:desired:strategies"

    @property
    def desired_riskpolicies(self) -> str:
        return f"{self.prefix}:desired:riskpolicies"

    @property
    def desired_last_applied(self) -> str:
        return f"{self.prefix}:desired:last-applied"

    def revoked_token(self, jti: str) -> str:
        return f"{self.prefix}:auth:revoked:{jti}"

    def refresh_token(self, family: str) -> str:
        return f"{self.prefix}:auth:refresh:{family}"

    def login_failures(self, client: str) -> str:
        return f"{self.prefix}:auth:login:{client}"

    def alert_sent(self, alert_id: str) -> str:
        return f"{self.prefix}:notify:sent:{alert_id}"

    @property
    def emergency_announced(self) -> str:
        return f"{self.prefix}:notify:emergency-announced"

    # -- pub/sub ------------------------------------------------------------------
    @property
    def events_channel(self) -> str:
        return f"{self.prefix}:events"

    @property
    def emergency_channel(self) -> str:
        return f"{self.prefix}:emergency:changes"


def keys_from_env() -> Keys:
    return Keys(default_prefix())
