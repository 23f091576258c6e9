"""``lineage``: where a column comes from and what depends on it, over the emitted OpenLineage events; and
re-sending events spooled while the endpoint was down."""

from __future__ import annotations

from orchestration.settings import Settings


def lineage(s: Settings, args) -> int:
    from orchestration.lineage.emit import http_transport, naming
    from orchestration.lineage.impact import LineageGraph
    from orchestration.lineage.transport import LakeFileTransport

    if args.action == "flush":
        http = http_transport(s)
        if http is None:
            print("OPENLINEAGE_URL is not set: nothing to flush")
            return 1
        report = http.flush()
        print(f"re-sent {report.resent}; {http.pending} still spooled" + (f" ({report.error})" if report.error else ""))
        return 0 if not http.pending else 1
    n = naming(s)

    def label(c) -> str:
        return f"{n.short(c[0], c[1])}.{c[2]}"

    zone, _, name = args.dataset.partition("/")  # a table as the lake names it: raw/amr_registration
    ref = n.table(zone, name)
    graph = LineageGraph.from_events(LakeFileTransport(s.lake()).read_all())
    column = (ref.namespace, ref.name, args.column)
    if args.action == "upstream":
        print(f"where {label(column)} comes from:")
        for depth, c, how in graph.upstream(column):
            print(f"  {'  ' * depth}{'← ' if depth else ''}{label(c)}{f'  [{how}]' if how else ''}")
        return 0
    columns, tables = graph.downstream(column)
    print(f"what depends on {label(column)}:")
    for c, how in columns:
        print(f"  → {label(c)}  [{how}]")
    for t in tables:
        print(f"  → {n.short(*t)}  [whole table: no column lineage declared]")
    if not columns and not tables:
        print("  nothing downstream in the emitted lineage")
    return 0
