"""`workbench report`: one self-contained HTML page per bench run (and per comparison of two runs).

It reads only what `bench` wrote under reports/<run-id>/ (records/, context.json), so every figure
on the page carries the settings and provenance it was measured with.
"""

REPORT_FILE = "index.html"
