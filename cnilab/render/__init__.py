"""Rich renderables: diagrams of observed state (diagram), command listings (commands), step
reports (report), lesson text (prose), the live views (live, trace).

Import from the module: this package loads nothing itself, so `teardown` (prose only) does not
pay for the diagram's Rich tables.
"""
