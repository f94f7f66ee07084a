"""What the shop sells. Product ids are 1..10."""

#: id -> (name, price in cents, one line about it)
PRODUCTS = {
    1: ("Walnut spoon", 1800, "Carved from one piece of walnut, oiled with beeswax."),
    2: ("Linen tea towel", 1400, "Stonewashed linen that dries a whole stack of plates."),
    3: ("Stoneware mug", 2600, "Thrown on the wheel, glazed in a deep sea green."),
    4: ("Beeswax candle", 1200, "Hand-dipped, burns clean for about twenty hours."),
    5: ("Oak cutting board", 5400, "End grain oak, heavy enough to stay where you put it."),
    6: ("Wool throw", 8900, "Woven from undyed wool of a single flock."),
    7: ("Brass bookmark", 900, "Etched brass that keeps your place for decades."),
    8: ("Leather key fob", 1100, "Vegetable-tanned leather that darkens with use."),
    9: ("Ceramic planter", 3200, "A drainage hole and a saucer, for a small fern."),
    10: ("Paper notebook", 1600, "Cotton paper, sewn binding, lies flat when open."),
}
