"""Follow one real packet through the lab: plan, probe, observe, verdict.

plan.py checks FROM/TO and says which namespaces to watch (the temporary nftables trace table is
the engine's op, ops/trace.py, owned through the ledger); probe.py sends the one packet;
observe.py runs it all against the kernel; path.py and verdict.py read the kernel's trace events
into hops and say where and why the packet died. Nothing here prints: render/trace.py does.
"""
