"""Market data: the one candle loader and its rules, the candle store, history
download, and exchange filters (tick size, lot step, minimum notional).

Imports only ``kubetrade.domain`` (and pyarrow); exchange access comes in as objects
typed by Protocols, so the exchange layer and this one do not import each other.
"""

from kubetrade.marketdata.errors import CandleDataError
from kubetrade.marketdata.frame import CandleFrame, LoadReport
from kubetrade.marketdata.loader import LoadOptions, frame_from_candles, load_candles

__all__ = ["CandleDataError", "CandleFrame", "LoadOptions", "LoadReport",
           "frame_from_candles", "load_candles"]
