"""The demo shop: a WSGI application (pages, assets, checkout, health, metrics) that gunicorn serves."""
