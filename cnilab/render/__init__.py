"""Every drawing, as Rich renderables: diagrams of observed state (diagram), command listings
(commands), step reports (report), lesson text (prose), the live views (live, cluster), a trace
(trace), the CNI lesson's calls (cni), JUnit XML (junit). Nothing here prints: cli/ does.

Import from the module: this package loads nothing itself, so `teardown` (prose only) does not
pay for the diagram's Rich tables.
"""
