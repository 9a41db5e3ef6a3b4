"""The lab live in a browser (`cnilab serve`): the scene the page draws (scene.py and
cluster_scene.py), the server (server.py: the standard library's HTTP server, Server-Sent
Events), the last trace (traces.py) and the page itself (static/: one HTML file, one script, one
style, no other origin).
"""
