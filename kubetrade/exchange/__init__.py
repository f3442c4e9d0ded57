"""Exchange access: ccxt adapter, ResilientExchange, paper broker, market-data feeds."""
