"""Checkout: price an order and take it.

An order is a product id and a quantity. A shopper's mistake (an unknown product, a bad
quantity) is a `CheckoutError` (HTTP 400); anything else that goes wrong is a failed
checkout (HTTP 500).
"""

import itertools
import threading

from shop.catalog import PRODUCTS

#: Parcel weight in grams, per product.
WEIGHT_G = {1: 120, 2: 300, 3: 450, 4: 250, 5: 1800, 6: 1400, 7: 40, 8: 30, 9: 900, 10: 350}

_orders = itertools.count(1)
_orders_lock = threading.Lock()


class CheckoutError(ValueError):
    """An order the shop cannot take, explained for the shopper."""


def shipping_cents(product_id, qty):
    """Parcel rate: a base price plus a step for every started 500 g."""
    grams = WEIGHT_G[product_id] * qty
    return 450 + (grams // 500) * 150


def checkout(form):
    """Take an order from a form {"product": "3", "qty": "1"}; returns the order as a dict."""
    try:
        product_id = int(form.get("product", ""))
        qty = int(form.get("qty", "1"))
    except ValueError:
        raise CheckoutError("expected product and qty as whole numbers") from None
    if product_id not in PRODUCTS:
        raise CheckoutError(f"no product {product_id}")
    if not 1 <= qty <= 99:
        raise CheckoutError("qty must be from 1 to 99")
    name, price, _ = PRODUCTS[product_id]
    total = price * qty + shipping_cents(product_id, qty)
    with _orders_lock:
        number = next(_orders)
    return {"order": number, "product": product_id, "name": name, "qty": qty, "total_cents": total}
