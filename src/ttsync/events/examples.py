"""The seed's example offline-events query, runnable against the sample warehouse (`ttsync.sample`).

`COMPLETE_PAYMENT_QUERY` is the seed's text (Amperity's "Build a query"), repaired only where the text is
damaged: it had lost its `SELECT` and first column (the emails, here `mc.email`), and the customer's phone
column inside `REGEXP_REPLACE`. Everything else is kept as written, including the placeholder event set id
`7654321098765432109`; `example_query()` swaps that for a real event set.
"""

from __future__ import annotations

from typing import Final

SEED_EVENT_SET_ID: Final = "7654321098765432109"

COMPLETE_PAYMENT_QUERY: Final = r"""SELECT
 mc.email AS emails
,'ACME Essentials' AS brand
,uit.product_category AS content_category
,uit.product_id AS content_id
,uit.product_name AS content_name
,'product' AS content_type
,'USD' AS currency
,'CompletePayment' AS event
,'website' AS event_channel
,CAST(uit.order_id AS VARCHAR) AS event_id
,'7654321098765432109' AS event_set_id
,CONCAT('+1','',REGEXP_REPLACE(mc.phone,'[$\D\s]','')) AS phone
,uit.item_price AS price
,uit.item_quantity AS quantity
,uit.store_id AS shop_id
,uit.order_datetime AS timestamp
,CAST(uit.item_revenue / uit.item_quantity AS DOUBLE) AS value
FROM Unified_Itemized_Transactions uit
LEFT JOIN Merged_Customers mc ON uit.amperity_id = mc.amperity_id
WHERE uit.order_datetime > (CURRENT_DATE - interval '7' day)
"""


def example_query(event_set_id: str) -> str:
    """The seed's query sending to `event_set_id` instead of the seed's placeholder id."""
    if not event_set_id.isdigit():
        raise ValueError("an event set id is a string of digits, for example '7654321098765432109'")
    return COMPLETE_PAYMENT_QUERY.replace(f"'{SEED_EVENT_SET_ID}'", f"'{event_set_id}'")
