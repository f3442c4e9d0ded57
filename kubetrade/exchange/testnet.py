"""``BINANCE_TESTNET``, read one way by every command.

It decides between Binance's testnet and the real exchange, so a value that is neither
a clear yes nor a clear no is refused instead of being taken as "no" (the real
exchange): ``maybe`` or ``treu`` used to send a pre-flight to api.binance.com, and
``on`` meant the testnet to the runner but the real exchange to the pre-flight.
"""

from __future__ import annotations

YES = frozenset({"1", "true", "yes", "on"})
NO = frozenset({"0", "false", "no", "off"})


def testnet_setting(value: str | None) -> bool | None:
    """``BINANCE_TESTNET``'s value: True (testnet), False (real exchange), or None when
    unset or empty (the Strategy's ``spec.exchange.testnet`` decides). Case and spaces
    are ignored. Raises ValueError naming the variable and the accepted values."""
    if value is None or not value.strip():
        return None
    word = value.strip().lower()
    if word in YES:
        return True
    if word in NO:
        return False
    raise ValueError(f"BINANCE_TESTNET={value!r} is neither yes nor no: use one of "
                     f"{', '.join(sorted(YES))} (the testnet) or {', '.join(sorted(NO))} "
                     "(the real exchange), or leave it unset (the Strategy decides)")


__all__ = ["NO", "YES", "testnet_setting"]
