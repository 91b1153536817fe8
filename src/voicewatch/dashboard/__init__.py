"""The dashboard's read models: one module per page, each returning a plain dict.

``overview`` (``/``), ``pipeline`` (``/pipeline``, a stage's detail),
``artifacts`` (the grid and one artifact, over ``records``), ``events``
(``/events``), ``metrics`` (``/metrics``), ``alerts`` (``/alerts``) and
``stream`` (what ``/api/v1/stream`` reads). ``summary`` is how one event
reads in a line (kind and summary), ``filters`` what the data pages share.
Every figure comes from ``voicewatch.metrics``; names from
``voicewatch.names``. Web routes call one function here and render it.
"""
