"""`biascard predict --engine ray`: predict_command's cards, composed on Ray Data actors.

The rows are parsed here on the driver by predict_command's own Predict.run, so bad rows,
ids already in the output, --shard and --strict are handled and reported exactly as by
`--engine local`. Its batches go into Ray's object store in blocks of whole batches (so
each actor composes the same batches as a single process would); map_batches runs them on a
pool of actors that each load the model once. Every card comes back with its place among the
good rows and is written in that order as it arrives (Predict.write: one write per card),
so a killed run resumes as a local one does. A card whose composition failed is reported
with its file and line as in a single process. Without --address a local Ray is started for
the run and shut down after it; the run's time counts from the parse (actor start included).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import heapq
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator

from biascard.compose.article import Article

FIELDS = tuple(f.name for f in dataclasses.fields(Article))
BATCHES_PER_BLOCK = 32  # batches per object-store block: few objects, yet blocks for every actor
OBJECT_STORE_BYTES = 256 * 2**20  # the local Ray's object store; a bigger input spills to disk


def _schema():
    import pyarrow as pa

    return pa.schema([("seq", pa.int64()), ("where", pa.string()), *((f, pa.string()) for f in FIELDS)])


class Blocks:
    """Predict's (where, article) batches as Arrow blocks in the object store; `seq` numbers
    the good rows in input order."""

    def __init__(self, rows_per_block: int):
        self.rows_per_block = rows_per_block
        self.buffer: list[dict] = []
        self.refs: list = []
        self.count = 0

    def add(self, batch: list) -> None:
        for where, article in batch:
            self.buffer.append({"seq": self.count, "where": where, **dataclasses.asdict(article)})
            self.count += 1
        if len(self.buffer) >= self.rows_per_block:
            self.put()

    def put(self) -> None:
        import pyarrow as pa
        import ray

        if self.buffer:
            self.refs.append(ray.put(pa.Table.from_pylist(self.buffer, schema=_schema())))
            self.buffer = []


# the exceptions a model load may raise that the CLI reports as a user error (exit 2)
RAISED_AS = {c.__name__: c for c in (FileNotFoundError, NotADirectoryError, PermissionError, OSError,
                                     ValueError, RuntimeError)}


def described(e: Exception) -> bytes:
    """An actor's exception as JSON (class names of its MRO and its text): data, not a pickle."""
    return json.dumps({"mro": [c.__name__ for c in type(e).__mro__], "message": str(e)}).encode()


def rebuilt(failure: bytes) -> Exception:
    """The driver's exception for an actor's: the nearest builtin class of its MRO, same text."""
    d = json.loads(failure)
    cls = next((RAISED_AS[n] for n in d["mro"] if n in RAISED_AS), RuntimeError)
    return cls(d["message"])


class Scorer:
    """A Ray Data actor: the model loaded once, then batches of rows → their card lines or
    why each is not written (predict_command.card_line, so the messages are the local ones)."""

    def __init__(self, open_service, args, card_line: Callable):
        self.card_line, self.failure = card_line, None
        try:
            self.context = open_service(args)
            self.service = self.context.__enter__()
        except Exception as e:  # noqa: BLE001 - sent to the driver: a Ray error keeps only its text
            self.failure = described(e)

    def __call__(self, batch):
        import pyarrow as pa

        records = batch.to_pylist()
        if self.failure is not None:
            lines, errors = (None,) * len(records), (None,) * len(records)
        else:
            cards = self.service.compose([Article(**{f: r[f] for f in FIELDS}) for r in records])
            lines, errors = zip(*map(self.card_line, cards)) if records else ((), ())
        return pa.table({"seq": batch.column("seq"), "where": batch.column("where"), "id": batch.column("id"),
                         "line": pa.array(lines, pa.binary()), "error": pa.array(errors, pa.string()),
                         "failure": pa.array([self.failure] * len(records), pa.binary())})


def in_order(batches: Iterable, count: int) -> Iterator[tuple[str, bytes | None, str | None]]:
    """(where, line, error) of seq 0, 1, ... whatever order the batches come in; a row that
    never came back is an error, never a silent gap. An actor that could not load the model
    sends its exception, raised here."""
    heap: list = []
    want = 0
    for batch in batches:
        failure = batch.column("failure")[0].as_py() if batch.num_rows else None
        if failure is not None:
            raise rebuilt(failure)  # the actor's own exception (a bad model...), as a local run raises it
        for r in batch.to_pylist():
            heapq.heappush(heap, (r["seq"], r["where"], r["line"], r["error"]))
        while heap and heap[0][0] == want:
            _, where, line, error = heapq.heappop(heap)
            want += 1
            yield where, line, error
    if want != count or heap:
        raise RuntimeError(f"Ray returned {want + len(heap)} of {count} rows (the first missing: #{want})")


@contextlib.contextmanager
def cluster(args):
    """Ray for this run (joined with --address, else started here); yields the CPUs the actors share."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise ValueError("--engine ray needs Ray: pip install 'biascard[ray]'") from None
    owned = not ray.is_initialized()
    if owned and args.address:
        ray.init(address=args.address, log_to_driver=False, configure_logging=False)
    elif owned:
        ray.init(num_cpus=args.cpus or _usable_cpus(), include_dashboard=False,
                 object_store_memory=OBJECT_STORE_BYTES, log_to_driver=False, configure_logging=False)
    # predict has its own bar and summary: Ray Data's bars and INFO lines would interleave
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = True  # in_order() then buffers next to nothing
    try:
        yield args.cpus or ray.cluster_resources().get("CPU", 1.0)
    finally:
        if owned:
            ray.shutdown()


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))  # a container's or taskset's share, not the host's
    return os.cpu_count() or 1


def _per_actor(cores: float, actors: int) -> float:
    """The CPUs of one actor: its share, but no more than the biggest node has."""
    import ray

    biggest = max((n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=cores)
    return min(cores / actors, biggest or cores)


def score(args, blocks: Blocks, cores: float, open_service, card_line: Callable) -> Iterable:
    """The result batches of map_batches over the blocks, on an actor pool."""
    import ray.data

    if not blocks.refs:
        return ()
    actors = args.actors or 1
    cpus = _per_actor(cores, actors)
    actor_args = copy.copy(args)
    actor_args.threads = args.threads or max(1, int(cpus))
    if args.model:
        actor_args.model = os.path.abspath(args.model)  # the actors may run elsewhere
    with warnings.catch_warnings():
        # max_restarts has no named parameter yet (Ray < 2.64): Ray's default restarts a dead actor
        # and retries its batch without end, so an article that crashes it would hang the run
        warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
        ds = ray.data.from_arrow_refs(blocks.refs).map_batches(
            Scorer, fn_constructor_args=(open_service, actor_args, card_line), batch_size=args.batch_size,
            batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus,
            max_restarts=0)
    return ds.iter_batches(batch_format="pyarrow", batch_size=None)


def run_ray(args, job, source, open_service, open_output: Callable, new_bar, card_line: Callable):
    """Parse `source` with job.run (reports as in a single process), compose on the actors,
    write with job.write in input order: (where --strict stopped or None, seconds)."""
    with cluster(args) as cores:
        start = time.perf_counter()
        blocks = Blocks(args.batch_size * BATCHES_PER_BLOCK)
        job.ship = blocks.add
        stopped_at = job.run(source, None)
        blocks.put()
        with contextlib.ExitStack() as stack:
            bar = new_bar(blocks.count) if new_bar is not None else None
            if bar is not None:
                stack.callback(bar.close)
            for where, line, error in in_order(score(args, blocks, cores, open_service, card_line), blocks.count):
                if job.out is None:  # opened once an actor has its model: --overwrite loses nothing before
                    job.out = stack.enter_context(open_output())
                job.write(where, line, error)
                if bar is not None:
                    bar.update(1)
            if job.out is None:  # no card at all: the output is still made (or truncated), as locally
                job.out = stack.enter_context(open_output())
        seconds = time.perf_counter() - start
    return stopped_at, seconds
