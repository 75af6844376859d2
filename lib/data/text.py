"""Text serialisations of units for the text encoder.

``customer_sentence`` describes a Hillstrom customer from the pre-treatment covariates only
(never the e-mail arm or an outcome, which would leak the label into the representation);
``history_text`` describes a purchase history by its items' attribute ids, most recent last.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

_SEGMENTS = {1: "$0 - $100", 2: "$100 - $200", 3: "$200 - $350", 4: "$350 - $500", 5: "$500 - $750",
             6: "$750 - $1,000", 7: "$1,000 +"}
_AREAS = {"Urban": "an urban", "Surburban": "a suburban", "Rural": "a rural"}
_CHANNELS = {"Phone": "by phone", "Web": "on the web", "Multichannel": "both by phone and on the web"}


def customer_sentence(row: Mapping) -> str:
    """A readable English sentence of a customer's pre-treatment covariates.

    Examples
    --------
    >>> customer_sentence({"recency": 10, "history_segment": 2, "history": 142.44, "mens": 1, "womens": 0,
    ...                    "newbie": 0, "zip_code": "Surburban", "channel": "Phone"}).split(", ")
    ['A returning customer from a suburban area who last purchased 10 months ago', 'spent $142.44 in the past year (the $100 - $200 band)', "bought men's merchandise but not women's merchandise", 'and buys by phone.']
    """
    months = int(row["recency"])
    bought = {(1, 1): "both men's and women's merchandise", (1, 0): "men's merchandise but not women's merchandise",
              (0, 1): "women's merchandise but not men's merchandise", (0, 0): "neither men's nor women's merchandise"}
    who = "new" if int(row["newbie"]) == 1 else "returning"
    return (f"A {who} customer from {_AREAS[str(row['zip_code'])]} area who last purchased {months} "
            f"month{'s' if months != 1 else ''} ago, spent ${float(row['history']):,.2f} in the past year "
            f"(the {_SEGMENTS[int(row['history_segment'])]} band), bought "
            f"{bought[(int(row['mens']), int(row['womens']))]}, and buys {_CHANNELS[str(row['channel'])]}.")


def history_text(items: Sequence[int], item_attributes_df: pd.DataFrame, max_items: int) -> str:
    """Describe a history as text: its last ``max_items`` items with their attribute ids, oldest first.

    Examples
    --------
    >>> attrs = pd.DataFrame({"item_id": [1, 2], "attr_ids": [[3, 4], [5]]})
    >>> history_text([1, 2, 1], attrs, max_items=20)
    'A user bought 3 items, oldest first: item 1 (attributes 3 4); item 2 (attributes 5); item 1 (attributes 3 4).'
    """
    lookup = dict(zip(item_attributes_df["item_id"].tolist(), item_attributes_df["attr_ids"]))
    items = [int(i) for i in items]
    shown = items[-max_items:]
    parts = []
    for item in shown:
        attrs = lookup.get(item)
        detail = " ".join(str(int(a)) for a in attrs) if attrs is not None and len(attrs) else "none"
        parts.append(f"item {item} (attributes {detail})")
    lead = f"A user bought {len(items)} items" + (f", the last {len(shown)} shown" if len(shown) < len(items) else "")
    if not parts:
        return "A user with no purchases yet."
    return f"{lead}, oldest first: " + "; ".join(parts) + "."
