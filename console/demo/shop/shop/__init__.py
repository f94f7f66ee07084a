"""The demo shop: pages, assets, checkout, health and metrics, served by a master and its worker."""
