"""The shop's HTML. Every asset is named by its logical path and turned into the URL the
release's manifest gives it, so a page always asks for the assets of its own release."""

import html

from shop.catalog import PRODUCTS

TAGLINE = "Handmade goods from our workshop, shipped the same week."


def _price(cents):
    return f"${cents // 100}.{cents % 100:02d}"


def _layout(asset, title, body):
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)} · Workshop</title>
<link rel="stylesheet" href="{asset('css/shop.css')}">
<script src="{asset('js/shop.js')}" defer></script>
</head>
<body>
<header><a href="/"><img src="{asset('img/logo.svg')}" alt="Workshop" width="40" height="40"></a>
<p class="tagline">{html.escape(TAGLINE)}</p></header>
<main>
{body}
</main>
</body>
</html>
"""


def index(asset):
    items = "\n".join(
        f'<li><a href="/product/{pid}">{html.escape(name)}</a> <span class="price">{_price(price)}</span></li>'
        for pid, (name, price, _) in PRODUCTS.items()
    )
    return _layout(asset, "Shop", f'<h1>Shop</h1>\n<ul class="products">\n{items}\n</ul>')


def product(asset, product_id):
    name, price, blurb = PRODUCTS[product_id]
    body = f"""<h1>{html.escape(name)}</h1>
<p>{html.escape(blurb)}</p>
<p class="price">{_price(price)}</p>
<form method="post" action="/checkout" class="buy">
<input type="hidden" name="product" value="{product_id}">
<input type="number" name="qty" value="1" min="1" max="99">
<button type="submit"><img src="{asset('img/cart.svg')}" alt="" width="16" height="16"> Buy now</button>
</form>"""
    return _layout(asset, name, body)
