"""`python -m channels_rabbitmq_threaded bench`: the same scenarios against any channel layer, side by side.

Theory of operation
-------------------
The parent process (`cli`) only plans and reports. Each *cell* (one layer in one scenario) runs in a fresh
interpreter (`cell`), in a session of its own, so that a crash, a hang or leaked memory in one layer cannot spoil
another cell: the parent kills the whole session after `--cell-timeout` and writes the failure into that cell.
Inside a cell, the sending side runs in the cell's own process and every receiver runs in a separate process
(`members`), as on a real site where the Celery worker, the WSGI worker and the ASGI server are different processes.
Layers are built from a dotted path and keyword options exactly as Channels builds `CHANNEL_LAYERS` (`layers`).

Modules: `layers` (what to run against), `members` (receiver processes), `scenarios` (the measurements, each a
function returning named figures), `cell` (one cell in a child interpreter), `report` (tables, ratios, goals,
JSON), `cli` (arguments, the run, the progress bar).

Nothing here is imported by the layer itself.
"""
