"""Sensors: one landing sensor per registered source, each triggering that source's collection."""

import time

import dagster as dg

from assets.collect import database_collector, raw_key
from assets.ingest.collector import collect_history, landed_fingerprints, recorded_fingerprints
from assets.ingest.stream import StreamCollector
from lakehouse.registry import Dataset, registry
from orchestration import partitions
from orchestration.resources import LakeResource, LandingResource
from sensors.landing import arrivals, scan_landing

INTERFACE_POLL_SECONDS = 900


def landing_sensor(ds: Dataset) -> dg.SensorDefinition:
    pdef = partitions.for_dataset(ds)

    @dg.sensor(
        name=f"landing_{ds.id}",
        target=[raw_key(ds)],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Watches landing/{ds.landing} ({ds.pattern}) and collects {ds.name_zh} when files arrive.",
    )
    def _sensor(context: dg.SensorEvaluationContext, landing: LandingResource, lake: LakeResource):
        current = scan_landing(ds, landing)
        history = collect_history(lake.lake(), ds.id) if current else None
        collected = set()
        if history is not None:  # landed, or recorded as ignored: nothing more a run would do with them
            collected = landed_fingerprints(history) | {(f, *fp) for f, _, *fp in recorded_fingerprints(history)}
        found = arrivals(context.cursor, current, collected)
        if not found.files:
            context.update_cursor(found.cursor)
            return dg.SkipReason(f"no new files in landing/{ds.landing}")
        reason = found.reason(ds)
        context.log.info(reason)
        context.update_cursor(found.cursor)
        tags = {"shucang/trigger": "landing", "shucang/dataset": ds.id, "shucang/reason": reason[:1000]}
        if pdef is not None:
            # the periods the files' names state (the rows decide which partitions are materialised: a
            # correction of an earlier month in a later file materialises that month)
            tags |= partitions.range_tags(partitions.named_range(pdef, ds, found.files))
        return dg.RunRequest(run_key=found.run_key, tags=tags)

    return _sensor


def _source_tags(ds: Dataset, pdef, reason: str, periods: list[str] = (), everything: bool = False) -> dict[str, str]:
    """The tags of a source's collection run: why, and for a partitioned raw the range it names — the periods
    the source says are waiting, else every period (what a change log or a stream holds is known only once
    read) or the current one."""
    tags = {"shucang/trigger": "source", "shucang/dataset": ds.id, "shucang/reason": reason[:1000]}
    if pdef is not None:
        named, _ = partitions.valid(pdef, periods)
        named = named or (partitions.keys(pdef) if everything else partitions.keys(pdef)[-1:])
        tags |= partitions.range_tags(dg.PartitionKeyRange(named[0], named[-1]))
    return tags


def source_sensor(ds: Dataset) -> dg.SensorDefinition:
    """A database source: each tick asks the source how many rows lie after the raw position (nothing is
    read) and starts the collection when there are some."""
    pdef = partitions.for_dataset(ds)
    db = ds.database
    assert db is not None

    @dg.sensor(
        name=f"source_{ds.id}",
        target=[raw_key(ds)],
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Watches {ds.kind} table {db.table} (connection {db.connection}) and collects {ds.name_zh} "
        f"when rows change after the last position ({db.capture}).",
    )
    def _sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
        collector = database_collector(ds)(ds, lake.lake(), "sensor")
        rows, periods = collector.pending()
        last = collector.last_commit()
        position = last["source_position"] if last else "start"
        if not rows:
            return dg.SkipReason(f"no rows after {position} in {db.table}")
        reason = f"{rows} row(s) after {position} in {ds.kind} table {db.table}"
        # a change log says which periods only once decoded: the run names them all (the rows decide)
        tags = _source_tags(ds, pdef, reason, periods, everything=db.capture == "log")
        # one run per position: a tick before that run lands asks for the same run again, and is deduplicated
        return dg.RunRequest(run_key=f"{ds.id}@{position}", tags=tags)

    return _sensor


def stream_sensor(ds: Dataset) -> dg.SensorDefinition:
    """A stream source: each tick asks the consumer how many readings wait for it (nothing is read) and
    starts the collection when some do."""
    spec = ds.stream
    assert spec is not None
    pdef = partitions.for_dataset(ds)

    @dg.sensor(
        name=f"source_{ds.id}",
        target=[raw_key(ds)],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Watches the JetStream stream {spec.stream} ({', '.join(spec.subjects)}) and collects "
        f"{ds.name_zh} when readings wait.",
    )
    def _sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
        import asyncio

        waiting = asyncio.run(StreamCollector(ds, lake.lake(), "sensor").pending())
        if not waiting:
            return dg.SkipReason(f"no readings waiting in {spec.stream}")
        tags = _source_tags(ds, pdef, f"{waiting} reading(s) waiting", everything=True)
        return dg.RunRequest(run_key=f"{ds.id}@{int(time.time()) // 30}", tags=tags)

    return _sensor


def interface_sensor(ds: Dataset) -> dg.SensorDefinition:
    """An interface source: an interface cannot be asked what changed without reading it, so the collection
    runs every ``INTERFACE_POLL_SECONDS`` (a run that finds nothing after its cursor lands nothing)."""
    api = ds.api
    assert api is not None
    pdef = partitions.for_dataset(ds)

    @dg.sensor(
        name=f"source_{ds.id}",
        target=[raw_key(ds)],
        minimum_interval_seconds=INTERFACE_POLL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Reads the interface {api.path} (connection {api.connection}) from its cursor every "
        f"{INTERFACE_POLL_SECONDS // 60} minutes and collects {ds.name_zh}.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        bucket = int(time.time()) // INTERFACE_POLL_SECONDS
        tags = _source_tags(ds, pdef, f"poll of {api.path}", everything=True)
        return dg.RunRequest(run_key=f"{ds.id}@{bucket}", tags=tags)

    return _sensor


# Assets with an automation condition (the catalogue) follow their upstreams without a schedule.
automation = dg.AutomationConditionSensorDefinition(
    "automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Materialises assets whose automation condition is met, e.g. the catalogue after a collection.",
)

defs = dg.Definitions(
    sensors=[
        *(
            source_sensor(ds)
            if ds.database is not None
            else interface_sensor(ds)
            if ds.api is not None
            else stream_sensor(ds)
            if ds.stream is not None
            else landing_sensor(ds)
            for ds in registry().datasets
        ),
        automation,
    ]
)
