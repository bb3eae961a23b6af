"""`make bench`: the archive core's numbers as JSON lines, with notmuch and mu as yardsticks.

On a generated corpus with attachments (--messages, $BENCH_MESSAGES, default 20,000) and
one of conversations only (--plain-messages, $BENCH_PLAIN_MESSAGES, default the same
count): `archiver import` until searchable and durable, then `notmuch new` and `mu index`
on the same Maildir right after it, and the ratios ours/theirs (a busy machine slows all
three alike, so ratios move less than rates). With --rounds N ($BENCH_ROUNDS, default 1)
the three run N times, interleaved, each round into a fresh store: a 2-core virtual
machine here ran the same import in 50 to 68 s within an hour, so one round's ratio can
be off by a fifth; the "versus" line then gives the median of the rounds' ratios, and each
round's in <ratio>_rounds. Each import reports wall and CPU time and peak memory of the
whole process tree (the importing process and its extraction workers, tests.bench.measure).
Neither yardstick reads attachments: after them, each round on the corpus with attachments
imports it once more with the attached files left unread (tests.bench.unread_attachments),
and its "attachment_cost" line says what reading them costs (the difference of the two
imports' tree CPU, its share of ours, and both rates beside notmuch's and mu's).
Then `archiver reindex` of the first round's archive (its rate over the import's), search
latency p50/p99 over a mix of queries (in-process, as the web service sees it, and per CLI
process, as notmuch is timed), SMTP intake with 8 clients (BENCH_SMTP_MESSAGES of each
corpus, default 3,000; `archiver run`, then `serve smtp` alone), and mirroring between two
appliances in network namespaces (copy rate of BENCH_MIRROR_MESSAGES fresh messages,
default 2,000, then catch-up of the whole corpus queued during a link cut).
--only (or $BENCH_ONLY) picks some of: import, reindex, search, plain, mirror, smtp (the
default: all of them), and scale, asked for by name only: how import time and memory grow
with the corpus, plain imports of each size of --scale-sizes ($BENCH_SCALE_SIZES, default
5000,20000,80000; some 10 minutes on 2 cores) beside mu (tests.bench.scale_bench).
Numbers are reported, never asserted.

    python -m tests.bench.run [--messages N] [--plain-messages N] [--only import,plain]
                              [--rounds N] [--scale-sizes N,N,...]
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from services.archive.search import search

from . import corpus as corpus_module
from .measure import run_measured
from .mu_bench import run_mu
from .notmuch_bench import percentile, run_notmuch
from .scale_bench import bench_scale
from .snippet_bench import bench_snippets
from .unread_attachments import MARKERS_IN_FILES
from .unread_attachments import command as unread_command

ARCHIVER = Path(sys.prefix) / "bin" / "archiver"
# (our query, the same question in notmuch's syntax)
QUERIES = [
    ("zanthoxylum", "zanthoxylum"),
    ("quillfeather", "quillfeather"),
    ("subject:brackenvale", "subject:brackenvale"),
    ('"project report"', '"project report"'),
    ("budget AND invoice", "budget and invoice"),
    ("meeting OR agenda", "meeting or agenda"),
    ("contract AND NOT legal", "contract and not legal"),
    ("arch*", "arch*"),
    ("from:alice", "from:alice"),
    ("date:2021-01-01..2021-06-30", "date:2021-01-01..2021-06-30"),
    ("tessellora AND date:2020..2022", "tessellora and date:2020..2022"),
    ("ottervane", "ottervane"),
    ('body:"project report"', 'body:"project report"'),
    ("to:*@example.com", "to:example.com"),
]
SEARCH_REPEAT = 5
SMTP_MESSAGES = int(os.environ.get("BENCH_SMTP_MESSAGES", "3000"))
MIRROR_FRESH_MESSAGES = int(os.environ.get("BENCH_MIRROR_MESSAGES", "2000"))
TREE_PACKAGES = ("services", "firmware")
DEFAULT_PARTS = ("import", "reindex", "search", "plain", "mirror", "smtp")
PARTS = DEFAULT_PARTS + ("scale",)
MEMORY_NOTE = ("memory: the process and its extraction workers (tests.bench.measure); of "
               "the Pss peak, tree_pss_peak_anon_mb is anonymous (only swap frees it), "
               "tree_pss_peak_file_mb file-backed (libraries, LMDB's map: page cache the "
               "kernel drops under pressure)")


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def ratio(ours: float, theirs: float) -> float | None:
    return rounded(exact_ratio(ours, theirs))


def exact_ratio(ours: float, theirs: float) -> float | None:
    """ours / theirs, unrounded; None when theirs is 0 (too short to measure)."""
    return ours / theirs if theirs else None


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def count(text: str) -> int:
    """`text` as a whole number of at least 1 (ValueError otherwise)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def counts(text: str) -> list[int]:
    """`text` as comma-separated whole numbers of at least 1, one at least (ValueError
    otherwise)."""
    values = [count(part) for part in text.split(",") if part.strip()]
    if not values:
        raise ValueError(text)
    return values


MEANINGS = {count: "a whole number of at least 1",
            counts: "comma-separated whole numbers of at least 1"}
# option -> (the variable that gives its default, that default, its converter)
SETTINGS = {"--messages": ("BENCH_MESSAGES", "20000", count),
            "--plain-messages": ("BENCH_PLAIN_MESSAGES", None, count),
            "--rounds": ("BENCH_ROUNDS", "1", count),
            "--scale-sizes": ("BENCH_SCALE_SIZES", "5000,20000,80000", counts)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, each defaulting to its $BENCH_* variable (SETTINGS); exits 2 naming the
    option or the variable that holds no valid value, and when --only ($BENCH_ONLY) names
    no part or one unknown."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for option, (variable, fallback, convert) in SETTINGS.items():
        parser.add_argument(option, type=convert,
                            default=from_environment(parser, variable, fallback, convert),
                            help=f"{MEANINGS[convert]}; default ${variable}, else "
                                 f"{fallback or 'the same as --messages'}")
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY", ",".join(DEFAULT_PARTS)),
                        help=f"comma-separated parts among {', '.join(PARTS)}; default "
                             f"$BENCH_ONLY, else {', '.join(DEFAULT_PARTS)}")
    args = parser.parse_args(argv)
    args.only = {part.strip() for part in args.only.split(",") if part.strip()}
    if not args.only:
        parser.error(f"--only (or $BENCH_ONLY) names no part; known: {', '.join(PARTS)}")
    if args.only - set(PARTS):
        parser.error(f"unknown parts {sorted(args.only - set(PARTS))}; known: {PARTS}")
    if args.only & {"reindex", "search"}:
        args.only.add("import")  # they work on the imported archive
    args.plain_messages = args.plain_messages or args.messages
    return args


def from_environment(parser: argparse.ArgumentParser, variable: str, fallback: str | None,
                     convert: Callable[[str], object]):
    """convert($variable) (else of `fallback`; None for none); exits 2 naming the variable
    when it holds no value `convert` takes (even where the option is given: a setting that
    is wrong is said, not silently passed over)."""
    text = os.environ.get(variable, fallback)
    if text is None:
        return None
    try:
        return convert(text)
    except ValueError:
        parser.error(f"${variable} must be {MEANINGS[convert]}, not {text!r}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    byte_compile_tree()
    with tempfile.TemporaryDirectory(prefix="archiver-bench-") as scratch:
        scratch = Path(scratch)
        maildir = scratch / "corpus"
        if args.only & {"import", "mirror", "smtp"}:  # plain and scale make their own
            corpus = generated(maildir, args.messages, attachments=True)
        if "import" in args.only:
            ours = import_versus_yardsticks(maildir, scratch / "data", len(corpus),
                                            "with_attachments", "search" in args.only,
                                            rounds=args.rounds, attachment_cost=True)
            if "reindex" in args.only:
                bench_reindex(scratch / "data", len(corpus), ours["msgs_per_s"])
        if "plain" in args.only:
            plain = generated(scratch / "plain", args.plain_messages, attachments=False)
            import_versus_yardsticks(scratch / "plain", scratch / "plain-data", len(plain),
                                     "without_attachments", with_search=False,
                                     rounds=args.rounds)
        if "mirror" in args.only:
            bench_mirror_both(scratch, maildir, len(corpus),
                              ours["msgs_per_s"] if "import" in args.only else None)
        if "smtp" in args.only:
            if "plain" not in args.only:  # else the plain import's corpus
                plain = generated(scratch / "plain", min(args.plain_messages, SMTP_MESSAGES),
                                  attachments=False)
            bench_smtp_on(scratch / "smtp", corpus, "with_attachments")
            bench_smtp_on(scratch / "smtp-plain", plain, "without_attachments")
        if "scale" in args.only:
            for result in bench_scale(scratch / "scale", args.scale_sizes, ARCHIVER):
                emit(**result)
    return 0


def bench_smtp_on(scratch: Path, corpus: corpus_module.Corpus, name: str) -> None:
    """SMTP intake of SMTP_MESSAGES of `corpus`: under `archiver run` (indexing meanwhile,
    until searchable), then `serve smtp` alone. The issue's targets (1,000 msg/s, searchable
    within 5 s of the last 250) hold or not by corpus on 2 cores: with attachments the
    indexing of 3,000 messages alone takes longer than the two bounds together."""
    from .smtp_bench import bench_smtp
    # On the wire SMTP lines end in CRLF (smtplib sends bytes as they are).
    sample = [path.read_bytes().replace(b"\n", b"\r\n") for path in corpus[:SMTP_MESSAGES]]
    for command, folder in ((("run",), scratch), (("serve", "smtp"), scratch / "alone")):
        folder.mkdir(parents=True)
        emit(bench="smtp_intake", corpus=name, **bench_smtp(folder, sample, command=command))


def byte_compile_tree() -> None:
    """Byte-compile the tree's packages into their __pycache__ folders, as the image build
    does for the appliance: else every archiver process (and its workers' fork server)
    compiles each module again where PYTHONDONTWRITEBYTECODE is set, some 0.1 s of CPU a
    process that the appliance never spends. Raises OSError when a folder is not writable."""
    for package in TREE_PACKAGES:
        compileall.compile_dir(Path(__file__).parents[2] / package, quiet=1)


def generated(maildir: Path, count: int, attachments: bool) -> corpus_module.Corpus:
    started = time.perf_counter()
    corpus = corpus_module.generate(maildir, count, attachments=attachments)
    emit(bench="corpus", attachments=attachments, messages=len(corpus),
         bytes=corpus.total_bytes, seconds=round(time.perf_counter() - started, 1))
    return corpus


def import_versus_yardsticks(maildir: Path, data: Path, count: int, corpus: str,
                             with_search: bool, rounds: int = 1,
                             attachment_cost: bool = False) -> dict:
    """`rounds` rounds of our import, then notmuch's and mu's indexing of the same Maildir,
    and the ratios; our first round's archive (in `data`) is kept for reindex and search,
    the others' removed. With `attachment_cost`, each round ends with an import that leaves
    attachments unread and its "attachment_cost" line (import_round). Returns our first
    round's {"msgs_per_s", "tree_cpu_seconds", "tree_cpu_by_role"}."""
    ours, theirs, first_ratios = import_round(maildir, data, count, corpus, with_search, 1,
                                              attachment_cost)
    round_ratios = [first_ratios]
    for number in range(2, rounds + 1):
        again = data.with_name(f"{data.name}-round{number}")
        round_ratios.append(import_round(maildir, again, count, corpus, False, number,
                                         attachment_cost)[2])
        shutil.rmtree(again)
    emit(bench="versus", corpus=corpus, rounds=rounds,
         **{name: rounded(median_of(round_ratios, name)) for name in round_ratios[0]},
         **({f"{name}_rounds": [rounded(ratios[name]) for ratios in round_ratios]
             for name in round_ratios[0]} if rounds > 1 else {}),
         note="throughput ratios ours/theirs: above 1 is faster; CPU ratios: above 1 costs "
              "more (ours counts the extraction workers); with rounds > 1, each is the "
              "median of the rounds' ratios, listed in <ratio>_rounds")
    if with_search:
        in_process, cli = search_latencies(data)
        emit(bench="search", queries=len(QUERIES), repeat=SEARCH_REPEAT,
             p50_ms=percentile(in_process, 50), p99_ms=percentile(in_process, 99),
             cli_p50_ms=percentile(cli, 50), cli_p99_ms=percentile(cli, 99))
        emit(bench="snippets", **bench_snippets(data),
             note="results rows re-read each hit's body; storing body text would add "
                  "body_text_bytes to the index")
        emit(bench="search_versus_notmuch",
             cli_p50_ratio=ratio(percentile(cli, 50), theirs["notmuch_search_p50_ms"]),
             inprocess_p50_ratio=ratio(percentile(in_process, 50),
                                       theirs["notmuch_search_p50_ms"]),
             note="latency ratios ours/notmuch: above 1 is slower")
    return ours


def import_round(maildir: Path, data: Path, count: int, corpus: str, with_search: bool,
                 number: int, attachment_cost: bool = False) -> tuple[dict, dict, dict]:
    """One round: our import into `data`, then notmuch new (and its searches, `with_search`)
    and mu index, one right after the other; ours, notmuch's results, and the ratios
    (unrounded). With `attachment_cost`, then our import again with attachments unread (into
    a folder beside `data`, removed after) and the "attachment_cost" line of the two."""
    ours = bench_import(maildir, data, count, corpus, number)
    queries = [q for _, q in QUERIES] if with_search else []
    theirs = run_notmuch(maildir, queries, repeat=SEARCH_REPEAT)
    emit(bench="notmuch", corpus=corpus, round=number,
         **{k: v for k, v in theirs.items() if k != "notmuch_hits"})
    mu = run_mu(maildir)
    emit(bench="mu", corpus=corpus, round=number, **mu)
    if attachment_cost:
        unread_data = data.with_name(f"{data.name}-unread")
        unread = bench_unread_import(maildir, unread_data, count)
        hits = {"read": file_marker_hits(data), "unread": file_marker_hits(unread_data)}
        shutil.rmtree(unread_data)
        if hits["unread"]:
            raise RuntimeError(f"attachments were read in the unread import: {hits}")
        emit(bench="attachment_cost", corpus=corpus, round=number, messages=count,
             **attachment_costs(ours, unread, theirs["notmuch_new_msgs_per_s"],
                                mu["mu_index_msgs_per_s"]),
             file_marker_hits=hits, note=ATTACHMENT_COST_NOTE)
    return ours, theirs, {
        "import_over_notmuch_new": exact_ratio(ours["msgs_per_s"],
                                               theirs["notmuch_new_msgs_per_s"]),
        "import_over_mu_index": exact_ratio(ours["msgs_per_s"], mu["mu_index_msgs_per_s"]),
        "cpu_over_notmuch_new": exact_ratio(ours["tree_cpu_seconds"],
                                            theirs["notmuch_new_cpu_seconds"]),
        "cpu_over_mu_index": exact_ratio(ours["tree_cpu_seconds"], mu["cpu_seconds"])}


def median_of(round_ratios: list[dict], name: str) -> float | None:
    """The median of one ratio over the rounds (None when a round has none)."""
    values = [ratios[name] for ratios in round_ratios]
    return None if None in values else statistics.median(values)


def bench_import(maildir: Path, data: Path, count: int, corpus: str, number: int) -> dict:
    measured = run_measured([str(ARCHIVER), "import", "--json", "--data", str(data),
                             str(maildir)])
    summary = json.loads(measured.stdout)
    rate = count / measured.seconds
    emit(bench="import_index", corpus=corpus, round=number, messages=count,
         seconds=round(measured.seconds, 1),
         msgs_per_s=round(rate, 1), imported=summary["imported"], indexed=summary["indexed"],
         exit_status=measured.exit_code, **measured.cpu(), **measured.memory(),
         note=MEMORY_NOTE)
    stats = json.loads(subprocess.run([str(ARCHIVER), "stats", "--json", "--data", str(data)],
                                      capture_output=True, check=True).stdout)
    emit(bench="storage", corpus=corpus, round=number, raw_bytes=stats["raw_bytes"],
         stored_bytes=stats["stored_bytes"],
         stored_over_raw=round(stats["stored_bytes"] / stats["raw_bytes"], 3),
         reading_bytes=stats["reading_bytes"],
         reading_over_raw=round(stats["reading_bytes"] / stats["raw_bytes"], 3),
         note="reading: what reading each message gave, kept so a reindex need not read "
              "it again (services.archive.readings)")
    index_bytes = sum(f.stat().st_size for f in (data / "index").resolve().rglob("*")
                      if f.is_file())
    emit(bench="index", corpus=corpus, round=number, bytes=index_bytes,
         bytes_per_message=round(index_bytes / count),
         over_raw=round(index_bytes / stats["raw_bytes"], 3))
    return {"msgs_per_s": rate, "tree_cpu_seconds": measured.tree_cpu_seconds,
            "tree_cpu_by_role": measured.tree_cpu_by_role}


def bench_unread_import(maildir: Path, data: Path, count: int) -> dict:
    """Our import of `maildir` into `data` with attachments unread (tests.bench.
    unread_attachments), measured as bench_import's: {"msgs_per_s", "tree_cpu_seconds",
    "tree_cpu_by_role"}. RuntimeError when it fails or imports or indexes fewer than
    `count` messages."""
    tree = str(Path(__file__).parents[2])  # (for the fork server too: it preloads from it)
    path = os.pathsep.join(filter(None, (tree, os.environ.get("PYTHONPATH"))))
    measured = run_measured(unread_command(["import", "--json", "--data", str(data),
                                            str(maildir)]),
                            env={**os.environ, "PYTHONPATH": path})
    summary = json.loads(measured.stdout or b"{}")
    if measured.exit_code != 0 or summary.get("imported") != count \
            or summary.get("indexed") != count:
        raise RuntimeError(f"import with attachments unread: exit status "
                           f"{measured.exit_code}, {summary}")
    return {"msgs_per_s": count / measured.seconds,
            "tree_cpu_seconds": measured.tree_cpu_seconds,
            "tree_cpu_by_role": measured.tree_cpu_by_role}


ATTACHMENT_COST_NOTE = (
    "reading attachments: the import tree's CPU with them read (the import_index line's) "
    "less with them unread (tests.bench.unread_attachments: each attached file indexed by "
    "name and declared type, as notmuch and mu index it; forwarded messages still read): "
    "decoding, typing, hashing, the readers and their tools, containers opened, and "
    "indexing and storing the text they give; by role, where it was spent (workers: the "
    "extraction workers, tools: what they run, main: the importing process). Of this "
    "corpus: its DOCX and XLSX files are 6 of each kind, reused, so the pool reads each "
    "once (extraction_memo.TextMemo); each PDF and text file is its own. A difference "
    "of two runs: on a shared machine one import's tree CPU moved by a quarter between "
    "two rounds (1,000 messages), so read it over --rounds. file_marker_hits: messages "
    "found by the corpus's words placed in attached files only, in each archive (none "
    "unread, else the bench fails)")


def attachment_costs(read: dict, unread: dict, notmuch_rate: float, mu_rate: float) -> dict:
    """The attachment_cost line's numbers from our import with attachments `read` and the
    same with them `unread` (each {"msgs_per_s", "tree_cpu_seconds" (s), "tree_cpu_by_role"
    ({role: s})}) and the yardsticks' rates (msg/s): rates in msg/s, CPU in seconds, the
    share a fraction of the read import's tree CPU (None when that is 0), ratios None
    where the divisor is 0. Rounded for printing."""
    reading = read["tree_cpu_seconds"] - unread["tree_cpu_seconds"]
    return {
        "read_msgs_per_s": round(read["msgs_per_s"], 1),
        "unread_msgs_per_s": round(unread["msgs_per_s"], 1),
        "notmuch_new_msgs_per_s": notmuch_rate, "mu_index_msgs_per_s": mu_rate,
        "unread_over_read": ratio(unread["msgs_per_s"], read["msgs_per_s"]),
        "read_over_notmuch_new": ratio(read["msgs_per_s"], notmuch_rate),
        "unread_over_notmuch_new": ratio(unread["msgs_per_s"], notmuch_rate),
        "read_tree_cpu_seconds": read["tree_cpu_seconds"],
        "unread_tree_cpu_seconds": unread["tree_cpu_seconds"],
        "reading_tree_cpu_seconds": round(reading, 2),
        "reading_tree_cpu_share": ratio(reading, read["tree_cpu_seconds"]),
        "reading_cpu_by_role": {
            role: round(seconds - unread["tree_cpu_by_role"].get(role, 0.0), 2)
            for role, seconds in read["tree_cpu_by_role"].items()}}


def file_marker_hits(data: Path) -> int:
    """Messages of the archive in `data` found by any of the corpus's words placed in
    attached files only (MARKERS_IN_FILES)."""
    return archive_hits(data, " OR ".join(MARKERS_IN_FILES))


def archive_hits(data: Path, query: str) -> int:
    """Messages of the archive in `data` that `query` (our syntax) finds, counted exactly
    up to search.COUNT_LIMIT (10,000); QuerySyntaxError for a query it cannot parse."""
    return search(data / "index", query, limit=0).total


def bench_reindex(data: Path, count: int, import_rate: float) -> None:
    measured = run_measured([str(ARCHIVER), "reindex", "--json", "--data", str(data)])
    rate = count / measured.seconds
    report = json.loads(measured.stdout)
    emit(bench="reindex", messages=count, seconds=round(measured.seconds, 1),
         msgs_per_s=round(rate, 1), indexed=report["indexed"],
         index_bytes=report["index_bytes"],  # compacted when it goes live
         exit_status=measured.exit_code, over_import=ratio(rate, import_rate),
         **measured.cpu(), **measured.memory(), note=MEMORY_NOTE)


def bench_mirror_both(scratch: Path, maildir: Path, count: int,
                      import_rate: float | None) -> None:
    """Copy rate, then catch-up of the whole corpus; with `import_rate` (this run's
    import until searchable, msg/s), the catch-up's rate until searchable over it."""
    from .mirror_bench import bench_mirror
    fresh = corpus_module.generate(scratch / "fresh", MIRROR_FRESH_MESSAGES, seed=2)
    (scratch / "mirror").mkdir()
    for result in bench_mirror(scratch / "mirror", scratch / "fresh", len(fresh), maildir,
                               count):
        if result["bench"] == "mirror_catch_up" and import_rate:
            result["searchable_over_import"] = ratio(result["searchable_msgs_per_s"],
                                                     import_rate)
        emit(**result)


def search_latencies(data: Path) -> tuple[list[float], list[float]]:
    index_dir = data / "index"
    in_process, cli = [], []
    for _ in range(SEARCH_REPEAT):
        for query, _ in QUERIES:
            started = time.perf_counter()
            search(index_dir, query, limit=100)
            in_process.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            subprocess.run([str(ARCHIVER), "search", query, "--json", "--limit", "100",
                            "--data", str(data)], capture_output=True, check=True)
            cli.append((time.perf_counter() - started) * 1000)
    return in_process, cli


if __name__ == "__main__":
    sys.exit(main())
