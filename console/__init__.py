"""Deploy console: push trunk to a web fleet, assets first, in chunks, and watch the key metrics."""
