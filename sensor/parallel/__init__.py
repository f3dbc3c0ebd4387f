"""`--workers N`: flows sharded across worker processes, merged by one aggregating process.

Workers (worker.py) own flows and dissection; everything that crosses flows (inventory, graph,
detector, sinks) runs in the aggregator (aggregate.py), which replays the workers' events in the
order one process would have produced them (events.py), so the outputs are byte-identical.
`otsensor run -i --workers N` (live.py) has the kernel share the flows (PACKET_FANOUT) and merges the
same events by capture time.
"""
