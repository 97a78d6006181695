"""``python -m hwnas.search``: Top-k Sample Search over CNet/CDNet, optionally hardware-aware.

With ``--data-root`` it runs the seed's schedule on a Market-1501 folder (``--dataset market-format`` for any
folder in that layout); without, it generates a small synthetic Market-1501-format dataset and runs a short
schedule that ends in minutes on a CPU.

Settings come from, lowest precedence first: the schedule's defaults, ``--config FILE.yaml`` (sections
``search``, ``data``, ``latency_table``, ``sweep_latency_weights``), the flags given, and ``KEY=VALUE`` overrides
(``search.alpha_lr=0.01``). Each search writes its resolved settings to ``config.yaml`` in its folder;
``--resume --output DIR`` continues it with those settings (an option that would change them is refused;
device, threads, --data-threads, --ops-backend and --checkpoint-every may change).
Under ``torchrun`` it runs data-parallel (DDP; gloo on CPU, nccl on CUDA).
"""
from __future__ import annotations

import argparse
import contextlib
import faulthandler
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from hwnas import _cli, _config, ops
from hwnas._lock import is_lock_file, new_run_dir, run_lock
from hwnas._runlog import RunLog, run_log
from hwnas.data._cli import add_dataset_argument
from hwnas.errors import LatencyTableError, OutputError, UsageError
from hwnas.models import check_input_size
from hwnas.search import _dist
from hwnas.search._checkpoint import CHECKPOINT_NAME, has_checkpoint
from hwnas.search.config import DERIVE_MODES, SHARE_MODES, SearchConfig, SyntheticData
from hwnas.search.report import summary_lines
from hwnas.search.run_config import (
    DEFAULT_LATENCY_PRESSURE,
    RESULT_NEUTRAL,
    SearchRunConfig,
    default_latency_weight,
    resolve_search_run,
)
from hwnas.search.runner import SYNTHETIC_DIRNAME, default_threads, prepare_data, run_search, synthetic_dataset
from hwnas.search.sweep import parse_weights, run_sweep, write_sweep
from hwnas.viz import tensorboard


def build_parser(prog: str = "python -m hwnas.search") -> argparse.ArgumentParser:
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    _cli.add_config(p, "search (SearchConfig's fields), data, latency_table, sweep_latency_weights")
    p.add_argument("--space", choices=("cnet", "cdnet"), default="cdnet", help="search space")
    p.add_argument("--topk", type=_cli.positive_int, choices=(1, 2, 3, 4), default=2, help="candidates run per layer")
    p.add_argument("--data-root", type=_cli.path, help="dataset folder (paper schedule); default: synthetic data")
    add_dataset_argument(p)
    p.add_argument("--no-count-check", action="store_true", help="accept a trimmed copy of a real dataset")
    p.add_argument("--latency-table", type=_cli.table_ref, metavar="NAME|PATH",
                   help="latency table: a table name (e.g. rtx2080; see 'hwnas latency show') or a JSON path")
    p.add_argument("--latency-weight", type=_cli.nonnegative_float, default=None,
                   help="weight (per ms) of the expected-latency term in alpha's loss; 0 = the paper's search. "
                        "Default with --latency-table: 4 / (the table's E[lat] at uniform alphas), so the term starts "
                        "at 4 (0.02979 for rtx2080); without a table: 0")
    p.add_argument("--latency-target-ms", type=_cli.positive_float,
                   help="penalise only latency above this target: weight * max(E[lat]/target - 1, 0)")
    p.add_argument("--sweep-latency-weight", metavar="W1,W2,...",
                   help="run one search per weight and write a Pareto table/plot (needs --latency-table)")
    p.add_argument("--epochs", type=_cli.positive_int, help="epochs (default: the schedule's; alpha's lr milestones "
                   "keep their fractions)")
    p.add_argument("--batch-size", type=_cli.positive_int,
                   help="P x K batch size, a multiple of 4 images per identity (default: the schedule's)")
    p.add_argument("--width-mult", type=_cli.width_mult,
                   help="supernet width multiplier (default 1.0; 0.5 on synthetic data)")
    p.add_argument("--share-weights", choices=SHARE_MODES,
                   help="none: every candidate its own weights (the paper; default); io: the candidates of a layer "
                        "share their 1x1 convolutions, so the supernet trains on mixed paths (docs/search.md)")
    p.add_argument("--derive", choices=DERIVE_MODES,
                   help="how the genotype is chosen: alpha (argmax alpha, the paper; default) or score (the best of "
                        "the argmax-alpha genotype and --derive-samples random ones by the supernet's validation "
                        "score; with a latency weight > 0 only those no slower than the argmax-alpha genotype)")
    p.add_argument("--derive-samples", type=_cli.int_at_least(1, 100_000),
                   help="random genotypes scored with --derive score (default 200)")
    _cli.add_input_size(p, None, "input size HxW in pixels (default 256x128; 64x32 on synthetic data)")
    _cli.add_output(p, "output folder (default runs/search-<timestamp>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the search in --output from its checkpoint, with the settings in its config.yaml")
    _cli.add_seed(p)
    _cli.add_device(p)
    _cli.add_threads(p, help="torch intra-op threads (default 1 on synthetic data, else torch's choice)")
    p.add_argument("--data-threads", type=_cli.int_at_least(1, _cli.MAX_WORKERS), default=2, help="threads decoding images")
    p.add_argument("--ops-backend", default="eager",
                   help="hwnas.ops backend for the mixed ops: eager (reference), auto or a fused one "
                        "('python -m hwnas.ops info' lists them)")
    p.add_argument("--checkpoint-every", type=_cli.nonnegative_int,
                   help="steps between mid-epoch checkpoints (0: only at epoch ends; default: the schedule's)")
    _cli.add_progress(p)
    tensorboard.add_argument(p)
    return p


_SEARCH_FIELDS = frozenset(SearchConfig.__dataclass_fields__)


def flag_entries(args: argparse.Namespace, given: dict[str, str], layers: list[_config.Layer]
                 ) -> list[tuple[str, object, str]]:
    """The config entries ``(key, value, flag)`` of the flags given (``layers``: those below the flags)."""
    entries: list[tuple[str, object, str]] = []
    for dest, flag in given.items():
        value = getattr(args, dest)
        if dest in _SEARCH_FIELDS:
            entries.append((f"search.{dest}", list(value) if isinstance(value, tuple) else value, flag))
        elif dest == "input_size":
            if min(value) < 32:
                raise UsageError(f"input size {_cli.format_size(value)}, --input-size, expected both sides >= 32 "
                                 "pixels (the search's minimum)")
            entries.append(("search.image_size", list(value), flag))
        elif dest == "batch_size":
            k = _config.lookup(layers, "search.images_per_id", SearchConfig.images_per_id)
            if value % k or value < 2 * k:
                raise UsageError(f"batch size {value}, --batch-size, expected a multiple of {k} (images per "
                                 f"identity) of at least {2 * k}")
            entries.append(("search.ids_per_batch", value // k, flag))
        elif dest == "data_root":
            entries.append(("data.root", str(value), flag))
        elif dest == "dataset":
            entries.append(("data.dataset", value, flag))
        elif dest == "no_count_check":
            entries.append(("data.check_counts", not value, flag))
        elif dest == "latency_table":
            entries.append(("latency_table", value, flag))
        elif dest == "sweep_latency_weight":
            entries.append(("sweep_latency_weights", parse_weights(value), flag))
    return entries


def build_run(args: argparse.Namespace, given: dict[str, str]) -> SearchRunConfig:
    """Defaults < --config < flags < overrides; with --resume, the search's saved config.yaml, unchanged."""
    layers = [_config.file_layer(args.config)] if args.config is not None else []
    layers.append(_config.flag_layer(flag_entries(args, given, layers)))
    layers.append(_config.override_layer(args.overrides))
    saved = args.output / _config.CONFIG_NAME if args.resume and args.output is not None else None
    if saved is not None and saved.is_file():
        run = _config.resume_config(saved, SearchRunConfig(), layers, ignore=RESULT_NEUTRAL)
    else:
        run = resolve_search_run(layers)
    check_input_size(run.search.space, run.search.image_size, width_mult=run.search.width_mult)
    return run


def _where(args: argparse.Namespace, given: dict[str, str], dest: str, flag: str, key: str, value: object = None
           ) -> str:
    """How an error names a setting (with ``value`` when given): its flag when typed, else its config key and the
    file it came from (the search's config.yaml on --resume, or --config)."""
    shown = "" if value is None else f" {value}"
    if dest in given:
        return f"{flag}{shown}"
    source = args.output / _config.CONFIG_NAME if args.resume and args.output is not None else args.config
    return f"{key}{shown}" + ("" if source is None else f" (in {source})")


@contextlib.contextmanager
def _table_named(args: argparse.Namespace, given: dict[str, str]) -> Iterator[None]:
    """Latency-table errors name ``--latency-table``; when the table came from a config file, its key and file."""
    try:
        yield
    except LatencyTableError as e:
        where = _where(args, given, "latency_table", "--latency-table", "latency_table")
        e.args = (str(e).replace("--latency-table", where, 1),)
        raise


FINISHED_OUTPUTS = ("search_report.json", "genotype.json")  # written at a search's end only


def check_args(args: argparse.Namespace, given: dict[str, str] | None = None) -> SearchRunConfig:
    """Every option checked before any work starts (UsageError / RuntimeUnavailableError name the option)."""
    run = build_run(args, given if given is not None else {})
    if args.resume and args.output is None:
        raise UsageError("--resume without a folder, --output, expected --output DIR (the search to continue)")
    ckpt = None if args.output is None else args.output / "checkpoints" / CHECKPOINT_NAME
    if args.resume and run.sweep_latency_weights and not (args.output / _config.CONFIG_NAME).is_file():
        raise UsageError(f"nothing to resume, {args.output / _config.CONFIG_NAME} does not exist, expected the folder "
                         "of a sweep (run without --resume to start one)")
    if args.resume and not run.sweep_latency_weights and not has_checkpoint(ckpt):
        finished = [n for n in FINISHED_OUTPUTS if (args.output / n).exists()]
        if finished:  # its checkpoint was removed after the end: starting again would replace its results
            raise UsageError(f"nothing to resume, checkpoint {ckpt} (the search finished: {finished[0]} is there), "
                             "expected a search that stopped before its end (run without --resume into another "
                             "--output to search again)")
        if not (args.output / _config.CONFIG_NAME).is_file():  # one stopped before its first checkpoint restarts
            raise UsageError(f"nothing to resume, checkpoint {ckpt}, expected an existing search (run without "
                             "--resume)")
    if args.output is not None:
        _cli.check_output_dir(args.output)
        if not args.resume and args.output.is_dir() and any(not is_lock_file(p) for p in args.output.iterdir()):
            resumable = (args.output / _config.CONFIG_NAME).is_file() or has_checkpoint(ckpt)
            raise OutputError(f"output folder is not empty, --output {args.output}, expected a new or empty folder "
                              + ("(or --resume to continue the search in it)" if resumable else
                                 "(it holds no search to resume: move its files or choose another --output)"))
    if run.data.root is not None and not Path(run.data.root).is_dir():
        where = _where(args, given or {}, "data_root", "--data-root", "data.root", run.data.root)
        raise UsageError(f"dataset folder does not exist or is not a folder, {where}, expected "
                         "a dataset folder")
    if run.data.root is None:  # the synthetic proxy's identities are known before it is generated
        ids = SyntheticData().num_ids
        if run.search.ids_per_batch > ids:
            raise UsageError(f"{run.search.ids_per_batch} identities per batch, --batch-size {run.search.batch_size} "
                             f"with {run.search.images_per_id} images each, expected at most {ids} identities (the "
                             "synthetic proxy's)")
    backends = ops.available_backends()
    if args.ops_backend != "auto" and not backends.get(args.ops_backend, (False, ""))[0]:
        why = f" ({backends[args.ops_backend][1]})" if args.ops_backend in backends else ""
        usable = [name for name, (ok, _) in backends.items() if ok]
        raise UsageError(f"unknown or unavailable backend {args.ops_backend!r}{why}, --ops-backend, expected one of "
                         f"auto, {', '.join(usable)}")
    _cli.resolve_device(args.device)
    sweep = run.sweep_latency_weights is not None
    if sweep and args.tensorboard == "on":
        raise UsageError("TensorBoard event files for a sweep, --tensorboard on, expected --tensorboard auto or off "
                         "with --sweep-latency-weight (each point's search_report and alphas.png are written)")
    args.events = not sweep and tensorboard.check_mode(args.tensorboard)
    return run


def _output_dir(args: argparse.Namespace, info: _dist.DistInfo) -> Path:
    """``--output``, or a new unique ``runs/search-<timestamp>[-N]`` made by rank 0 (two searches started in the
    same second get different folders)."""
    if args.output is not None:
        return args.output
    return Path(_dist.gather_objects(str(new_run_dir("search")) if info.is_main else "", info)[0])


def _lock_output(output: Path, info: _dist.DistInfo) -> contextlib.ExitStack:
    """Rank 0 holds the folder's run lock; every rank learns whether it got it (no rank waits on a failed one)."""
    stack, refusal = contextlib.ExitStack(), None
    if info.is_main:
        try:
            stack.enter_context(run_lock(output))
        except OutputError as e:
            refusal = str(e)
    refusal = _dist.gather_objects(refusal, info)[0]
    if refusal:
        stack.close()
        raise OutputError(refusal)
    return stack


@_cli.command
def main(argv: list[str] | None = None, *, prog: str = "python -m hwnas.search") -> int:
    parser = build_parser(prog)
    args = parser.parse_intermixed_args(argv)
    given = _cli.given_options(parser, argv)
    with _table_named(args, given):  # a table from a config file is named by its key and file, not the flag
        run = check_args(args, given)
        table = _load_table(run.latency_table, run.search.space)
    torch.set_num_threads(args.threads or default_threads(run.synthetic))
    requested = _cli.resolve_device(args.device)
    info = _dist.init_from_env(requested.type)
    device = f"cuda:{info.local_rank}" if requested.type == "cuda" and info.enabled else str(requested)
    output = _output_dir(args, info)
    # info lines (the data read) are held until the search is accepted, then written to search.log
    with run_log() as log, _lock_output(output, info):
        return _search_in(args, run, table, info, device, output, log)


def _search_in(args: argparse.Namespace, run, table, info: _dist.DistInfo, device: str, output: Path,
               log: RunLog) -> int:
    """The search proper, in ``output`` (locked by the caller); ``log`` holds the info lines until it is accepted
    (rank 0 logs to ``search.log``, the other ranks warnings only)."""
    config = run.search
    say = print if info.is_main else (lambda *a, **k: None)
    # a dataset folder is read and checked before anything is written into the output folder
    data = None if run.data.root is None else prepare_data(config, Path(run.data.root), args.data_threads,
                                                             run.data.dataset, run.data.check_counts)
    if args.resume:  # a checkpoint of other settings or data is refused before config.yaml and search.log are touched
        notes: list[str] = []  # the synthetic-data note is printed only for a resume that goes on
        if data is None:
            root = _synthetic_root(config.seed, config, output, notes.append)  # made again only if it was removed
            data = prepare_data(config, root, args.data_threads, run.data.dataset, run.data.check_counts)
        _check_resumable(output, run, table, data)
        for note in notes:
            say(note)
    log.accept(output / "search.log" if info.is_main else None, logging.INFO if info.is_main else logging.WARNING)
    if info.is_main and not (args.resume and (output / _config.CONFIG_NAME).is_file()):  # a resume keeps the one it read
        _config.write_config(output / _config.CONFIG_NAME, run, "hwnas search: the resolved settings of this search "
                             f"(hwnas search --resume --output {output} continues it)")
    if data is None:
        root = _synthetic_root(config.seed, config, output, say)
        data = prepare_data(config, root, args.data_threads, run.data.dataset, run.data.check_counts)
    say(f"data: {data.description}; latency table: {table if table is not None else 'none'}; "
        f"latency weight {config.latency_weight:g} per ms{_weight_note(run, table)}; {info.world_size} process(es) "
        f"on {device}; output {output}")
    progress = not args.no_progress
    weights = list(run.sweep_latency_weights) if run.sweep_latency_weights is not None else None
    if args.tensorboard == "auto" and not args.events and weights is None:
        say(tensorboard.absent_note())
    with ops.use_backend(args.ops_backend):
        return _run(args, config, data, output, table, device, weights, progress, say, info)


def _check_resumable(output: Path, run: SearchRunConfig, table, data) -> None:
    """Every checkpoint this resume would continue (one, or one per swept weight) matches its settings, table and
    ``data`` (the data read now) and loads into its supernet: a dry load on the CPU (``loop.check_resume``)."""
    from hwnas.search.loop import check_resume
    from hwnas.search.sweep import sweep_dir

    c = run.search
    if run.sweep_latency_weights is None:
        if has_checkpoint(output / "checkpoints" / CHECKPOINT_NAME):  # none: it starts again with its saved settings
            check_resume(c, data, output, table)
        return
    for w in run.sweep_latency_weights:
        if has_checkpoint(sweep_dir(output, w) / "checkpoints" / CHECKPOINT_NAME):
            check_resume(c.replace(latency_weight=w), data, sweep_dir(output, w), table)


def _weight_note(run: SearchRunConfig, table) -> str:
    """Why the latency weight is what it is, when it is the default of a search with a table (``table``: the
    loaded one, not read again)."""
    c = run.search
    if table is not None and run.sweep_latency_weights is None and c.latency_weight > 0 and \
            c.latency_weight == default_latency_weight(table, c.space, c.latency_target_ms):
        return (f" (the default with a table: the latency term starts at {DEFAULT_LATENCY_PRESSURE:g}; "
                "--latency-weight 0 runs the paper's accuracy-only search)")
    return ""


def _load_table(name: str | None, space: str):
    if not name:
        return None
    from hwnas.latency import load_table

    return load_table(name, space=space)


def _synthetic_root(seed: int, config: SearchConfig, output: Path, say) -> Path:
    spec = SyntheticData(seed=seed)
    root = synthetic_dataset(output / SYNTHETIC_DIRNAME, spec)
    say(f"No --data-root given: searching on a SYNTHETIC Market-1501-format dataset ({spec.num_ids} ids x "
        f"{spec.images_per_id} images, {spec.image_size[0]}x{spec.image_size[1]}) in {root}, with a SHORT "
        f"schedule: {config.epochs} epochs, batch {config.batch_size}, input {config.image_size[0]}x"
        f"{config.image_size[1]}, width {config.width_mult}, alpha lr {config.alpha_lr}. Pass --data-root for "
        f"the paper's schedule.")
    return root


def _run(args: argparse.Namespace, config: SearchConfig, data, output: Path, table, device: str,
         weights: list[float] | None, progress: bool, say, info: _dist.DistInfo) -> int:
    if weights is not None:
        rows = run_sweep(config, data, weights, output, table, device, args.resume, progress)
        if info.is_main:
            paths = write_sweep(rows, table.name, output)
            for r in rows:
                say(f"w={r['latency_weight']:g}: {r['genotype']} predicted {r['predicted_latency_ms']:.3f} ms, "
                    f"supernet val acc (eval mode) {r['val_acc_eval_mode']:.3f}, alpha entropy "
                    f"{r['alpha_entropy_fraction']:.4f} ln n{' (UNDECIDED)' if r['undecided'] else ''}"
                    f"{' (Pareto)' if r['pareto'] else ''}")
            say("wrote " + ", ".join(str(p) for p in paths.values()))
        return 0
    resume = args.resume and has_checkpoint(output / "checkpoints" / CHECKPOINT_NAME)
    if args.resume and not resume:
        say(f"no checkpoint yet in {output / 'checkpoints'} (the search stopped before its first one): it starts "
            "from epoch 1 with its saved settings")
    result, paths = run_search(config, data, output, table, device, resume, progress, args.events)
    for line in summary_lines(result, table):
        say(line)
    say("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    faulthandler.enable()  # a crash in native code still prints the Python stack
    sys.exit(main())
