"""Turning one benchmark run's results into the Markdown tables, the target checks and the chart."""
from __future__ import annotations

import statistics
from pathlib import Path

__all__ = ["fmt_ms", "fmt_rps", "get", "checks", "markdown", "chart", "scale_markdown"]


def fmt_ms(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def fmt_rps(v) -> str:
    return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def get(results: dict, target: str, scen: str, *path):
    r = results.get("targets", {}).get(target, {})
    v = r.get("scenarios", {}).get(scen) if r else None
    if not v or "failed" in v:
        return None
    for p in path:
        v = v.get(p) if isinstance(v, dict) else None
        if v is None:
            return None
    return v


def checks(results: dict) -> list[dict]:
    R, D, B, P, L = "routerone", "direct", "bare", "routerone_pg", "litellm"
    out = []

    def add(what: str, value, limit: str, ok, note: str = "") -> None:
        out.append({"target": what, "measured": value, "limit": limit,
                    "ok": None if ok is None else bool(ok), "note": note})

    def diff(a, b):
        return None if a is None or b is None else a - b

    p50 = diff(get(results, R, "json_c1", "lat_ms", "p50"), get(results, D, "json_c1", "lat_ms", "p50"))
    add("non-streaming c=1: p50 added over direct", f"{p50:+.3f} ms" if p50 is not None else "n/a", "<= 1 ms",
        None if p50 is None else p50 <= 1.0)
    p99 = diff(get(results, R, "json_c1", "lat_ms", "p99"), get(results, D, "json_c1", "lat_ms", "p99"))
    add("non-streaming c=1: p99 added over direct", f"{p99:+.3f} ms" if p99 is not None else "n/a", "<= 2 ms",
        None if p99 is None else p99 <= 2.0)
    rps = get(results, R, "json_c64", "rps")
    cpu = get(results, R, "json_c64", "server_cpu_ms_per_req")
    add("one worker, c=64: throughput", f"{rps:,.0f} req/s" if rps else "n/a", ">= 2,500 req/s",
        None if rps is None else rps >= 2500,
        f"CPU cost {cpu:.3f} ms/req = {1000 / cpu:,.0f} req/s per fully available core" if cpu else "")
    bare = get(results, B, "json_c64", "rps")
    ratio = rps / bare if rps and bare else None
    add("one worker, c=64: share of bare pass-through", f"{ratio:.0%} ({fmt_rps(bare)} req/s bare)" if ratio else "n/a",
        ">= 40%", None if ratio is None else ratio >= 0.40)
    ll = get(results, L, "json_c64", "rps")
    lr = rps / ll if rps and ll else None
    add("one worker, c=64: multiple of LiteLLM", f"{lr:.1f}x ({fmt_rps(ll)} req/s LiteLLM)" if lr else "n/a", ">= 25x",
        None if lr is None else lr >= 25,
        "" if ll else (results.get("targets", {}).get(L, {}).get("skipped") or "LiteLLM not measured"))
    tot_r, tot_d = get(results, R, "paced_c32", "lat_ms", "p50"), get(results, D, "paced_c32", "lat_ms", "p50")
    rel = (tot_r / tot_d - 1) if tot_r and tot_d else None
    add("paced stream c=32: total stream time vs direct (p50)",
        f"{rel:+.1%} ({fmt_ms(tot_r)} vs {fmt_ms(tot_d)} ms)" if rel is not None else "n/a", "within 5%",
        None if rel is None else rel <= 0.05)
    tt = diff(get(results, R, "paced_c32", "ttft_ms", "p50"), get(results, D, "paced_c32", "ttft_ms", "p50"))
    add("paced stream c=32: TTFT p50 added over direct", f"{tt:+.3f} ms" if tt is not None else "n/a", "<= 2 ms",
        None if tt is None else tt <= 2.0)
    for key, label in ((R, "Router One"), (P, "Router One PG+Redis")):
        rss = results.get("targets", {}).get(key, {}).get("rss", {}).get("max_process_mb")
        add(f"peak RSS per worker ({label})", f"{rss:.1f} MB" if rss else "n/a", "<= 150 MB",
            None if not rss else rss <= 150)
    pg = get(results, P, "json_c64", "rps")
    pr = pg / rps if pg and rps else None
    add("PostgreSQL+Redis vs embedded throughput (c=64)", f"{pr:.0%} ({fmt_rps(pg)} req/s)" if pr else "n/a", ">= 60%",
        None if pr is None else pr >= 0.60,
        "" if pg else (results.get("targets", {}).get(P, {}).get("skipped") or "not measured"))
    return out


def markdown(results: dict) -> str:
    m = results["meta"]
    order = [k for k in ("direct", "bare", "routerone", "routerone_pg", "litellm") if k in results["targets"]]
    T = results["targets"]
    lines = [f"# Router One benchmark — {m['date']}", "",
             f"Command: `{m['command']}`  ",
             f"Measured: {m.get('source', '')}  ",
             f"Machine: {m['machine']}; {m['cpus']} CPU(s); Python {m['python']}; pinning: {m['pinning']}  ",
             f"Per scenario: {m['warmup_s']} s warm-up + {m['duration_s']} s measured, closed loop "
             f"(bench/loadgen.py, raw asyncio protocol on uvloop); upstream: bench/upstream.py "
             f"(16 tokens per reply; paced stream 20 chunks x 5 ms).  ",
             f"Load average at start: {m['loadavg_start']:.2f} (other work on the machine skews results).", ""]
    skipped = [(T[k]["label"], T[k]["skipped"]) for k in order if T[k].get("skipped")]
    for label, why in skipped:
        lines.append(f"- **{label} skipped:** {why.splitlines()[0][:300]}")
    if skipped:
        lines.append("")
    live = [k for k in order if not T[k].get("skipped")]

    lines += ["## Non-streaming (req/s, latency ms)", "",
              "| server | c=1 req/s | c=1 p50 | c=1 p99 | c=32 req/s | c=32 p50 | c=32 p99 | c=64 req/s | c=64 p50 | c=64 p99 | errors |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k in live:
        row = [T[k]["label"]]
        errs = 0
        for s in ("json_c1", "json_c32", "json_c64"):
            row += [fmt_rps(get(results, k, s, "rps")), fmt_ms(get(results, k, s, "lat_ms", "p50")),
                    fmt_ms(get(results, k, s, "lat_ms", "p99"))]
            errs += get(results, k, s, "errors") or 0
        row.append(str(errs))
        lines.append("| " + " | ".join(row) + " |")

    lines += ["", "## Streaming (ms)", "",
              "| server | c=1 TTFT p50 | c=1 TTFT p99 | c=32 TTFT p50 | c=32 TTFT p99 | c=32 streams/s | paced c=32 TTFT p50 | paced total p50 | paced total p99 | paced reads/stream | errors |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k in live:
        errs = sum(get(results, k, s, "errors") or 0 for s in ("stream_c1", "stream_c32", "paced_c32"))
        lines.append("| " + " | ".join([
            T[k]["label"], fmt_ms(get(results, k, "stream_c1", "ttft_ms", "p50")),
            fmt_ms(get(results, k, "stream_c1", "ttft_ms", "p99")),
            fmt_ms(get(results, k, "stream_c32", "ttft_ms", "p50")), fmt_ms(get(results, k, "stream_c32", "ttft_ms", "p99")),
            fmt_rps(get(results, k, "stream_c32", "rps")),
            fmt_ms(get(results, k, "paced_c32", "ttft_ms", "p50")), fmt_ms(get(results, k, "paced_c32", "lat_ms", "p50")),
            fmt_ms(get(results, k, "paced_c32", "lat_ms", "p99")),
            str(get(results, k, "paced_c32", "reads_per_stream_p50") or "-"), str(errs)]) + " |")

    lines += ["", "## Server cost", "",
              "| server | CPU ms/req c=1 | CPU ms/req c=64 | req/s per core at c=64 CPU cost | CPU ms/stream c=32 | CPU ms/paced stream | RSS MB after start | peak RSS MB (largest process) | processes |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k in live:
        rss = T[k].get("rss") or {}

        def cpu(s):
            v = get(results, k, s, "server_cpu_ms_per_req")
            return "-" if v is None else f"{v:.3f}"

        def capacity(k):
            v = get(results, k, "json_c64", "server_cpu_ms_per_req")
            return f"{1000 / v:,.0f}" if v else "-"
        lines.append("| " + " | ".join([
            T[k]["label"], cpu("json_c1"), cpu("json_c64"), capacity(k), cpu("stream_c32"), cpu("paced_c32"),
            str(T[k].get("info", {}).get("rss_after_start_mb", "-")),
            f"{rss['max_process_mb']:.1f}" if rss else "-", str(rss.get("processes", "-"))]) + " |")

    lines += ["", "## Targets (Router One, embedded default, one worker)", "",
              "| target | measured | limit | holds |", "|---|---|---|---|"]
    for c in results["checks"]:
        mark = "yes" if c["ok"] else ("n/a" if c["ok"] is None else "**NO**")
        note = f" ({c['note']})" if c["note"] else ""
        lines.append(f"| {c['target']} | {c['measured']} | {c['limit']} | {mark}{note} |")
    lines += ["", "CPU time is utime+stime of the server's process tree over the measured window, divided by the "
              "requests completed in it (/proc clock ticks: 10 ms resolution). Peak RSS is VmHWM over the "
              "server's whole run. `direct` rows measure the upstream itself.", "",
              "![chart](chart.png)", ""]
    return "\n".join(lines)


def chart(results: dict, path: Path) -> str:
    """Draw the PNG; "" on success, else why not. matplotlib is not one of Router One's dependencies:
    when this interpreter lacks it, it is installed once into bench/.venv-tools and the chart is
    drawn there (from the results JSON)."""
    try:
        import matplotlib
    except ImportError:
        return _chart_in_tools_venv(results, path)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    T = results["targets"]
    keys = [k for k in ("direct", "bare", "routerone", "routerone_pg", "litellm") if k in T and not T[k].get("skipped")]
    labels = {"direct": "direct", "bare": "bare pass-through", "routerone": "Router One",
              "routerone_pg": "Router One PG+Redis", "litellm": "LiteLLM"}
    colors = {"direct": "#999999", "bare": "#4c72b0", "routerone": "#dd8452", "routerone_pg": "#c44e52",
              "litellm": "#55a868"}
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    width = 0.8 / max(1, len(keys))

    def bars(ax, groups, metric, title, ylabel, log=True):
        for i, k in enumerate(keys):
            vals = [metric(k, g) or 0 for g in groups]
            xs = [j + i * width for j in range(len(groups))]
            b = ax.bar(xs, vals, width, label=labels[k], color=colors[k])
            for rect, v in zip(b, vals):
                if v:
                    ax.annotate(f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.2f}",
                                (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                                ha="center", va="bottom", fontsize=6.5, rotation=90)
        ax.set_xticks([j + width * (len(keys) - 1) / 2 for j in range(len(groups))])
        ax.set_xticklabels([g[1] for g in groups])
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)

    bars(axes[0][0], [("json_c1", "c=1"), ("json_c32", "c=32"), ("json_c64", "c=64")],
         lambda k, g: get(results, k, g[0], "rps"), "Non-streaming throughput (higher is better)", "req/s (log)")
    bars(axes[0][1], [("json_c1", "c=1"), ("json_c32", "c=32"), ("json_c64", "c=64")],
         lambda k, g: get(results, k, g[0], "lat_ms", "p50"), "Non-streaming p50 latency (lower is better)", "ms (log)")
    bars(axes[0][2], [("json_c1", "c=1"), ("json_c32", "c=32"), ("json_c64", "c=64")],
         lambda k, g: get(results, k, g[0], "lat_ms", "p99"), "Non-streaming p99 latency (lower is better)", "ms (log)")
    bars(axes[1][0], [("stream_c1", "TTFT c=1"), ("stream_c32", "TTFT c=32"), ("paced_c32", "TTFT paced c=32"),
                      ("paced_total", "paced total")],
         lambda k, g: get(results, k, "paced_c32", "lat_ms", "p50") if g[0] == "paced_total"
         else get(results, k, g[0], "ttft_ms", "p50"),
         "Streaming p50 (lower is better)", "ms (log)")
    bars(axes[1][1], [("json_c1", "non-streaming c=1"), ("json_c64", "non-streaming c=64"),
                      ("stream_c32", "stream c=32")],
         lambda k, g: get(results, k, g[0], "server_cpu_ms_per_req"),
         "Server CPU time per request (lower is better)", "ms (log)")
    bars(axes[1][2], [("rss", "peak RSS (largest process)")],
         lambda k, g: (T[k].get("rss") or {}).get("max_process_mb"),
         "Server memory (lower is better)", "MB", log=False)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=len(keys), fontsize=9, bbox_to_anchor=(0.5, 0.955))
    fig.suptitle(f"Router One benchmark, {results['meta']['date']} ({results['meta']['cpus']} CPUs, loopback)")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return ""


def _chart_in_tools_venv(results: dict, path: Path) -> str:
    import json
    import subprocess
    import sys
    import tempfile
    here = Path(__file__).resolve().parent
    venv = here / ".venv-tools"
    py = venv / "bin" / "python"
    try:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        if subprocess.run([str(py), "-c", "import matplotlib"], capture_output=True, timeout=120).returncode:
            r = subprocess.run([str(py), "-m", "pip", "install", "-q", "matplotlib"], capture_output=True,
                               text=True, timeout=900)
            if r.returncode:
                return f"no chart: matplotlib could not be installed ({(r.stderr or r.stdout).strip()[-200:]})"
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(results, f, default=str)
        code = ("import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); from report import chart; "
                "sys.exit(chart(json.load(open(sys.argv[2])), Path(sys.argv[3])) or 0)")
        r = subprocess.run([str(py), "-c", code, str(here), f.name, str(path)], capture_output=True, text=True,
                           timeout=300)
        Path(f.name).unlink(missing_ok=True)
        return "" if r.returncode == 0 else f"no chart: {(r.stderr or r.stdout).strip()[-300:]}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"no chart: {exc}"


# -- bench/scale.py ---------------------------------------------------------------------------------
def _ratio(a, b) -> str:
    return "-" if not a or not b else f"{a / b:.2f}x"


def _cpu_per_stream(r: dict) -> str:
    v = r.get("cpu_ms_per_stream")
    return "-" if v is None else f"{v:.2f}"


def scale_markdown(out: dict) -> str:
    """bench/scale.py's results: throughput tables, the streams table, the targets."""
    c = out["conditions"]
    lines = ["# Router One at scale (bench/scale.py)", "",
             f"{c['started']}; {c['cpus']} CPUs ({c['machine']}), Python {c['python']}; load average "
             f"{c['loadavg_start'][0]:.1f} at the start, {c.get('loadavg_end', [0])[0]:.1f} at the end; "
             f"{'--quick, ' if c['quick'] else ''}warm-up {c['warmup_s']} s, measured {c['duration_s']} s per row; "
             f"{c.get('services', 'no PostgreSQL/Redis')}.", ""]
    tp = out.get("throughput", {})
    groups = [("workers", "## `--workers 2` vs one worker (non-streaming, c=64; not pinned; load from bench/loadgen.py)"),
              ("workers (wrk)", "## The same servers, load from `wrk` (C, one thread; see bench/wrkload.py)"),
              ("pinned", "## PostgreSQL + Redis vs embedded (one worker, c=64; gateway on CPU 0, the rest on the others)"),
              ("topology", "## nginx + 3 instances (c=64)")]
    for group, title in groups:
        rows = tp.get(group)
        if not rows:
            continue
        lines += [title, "", "| server | req/s | p50 ms | p99 ms | CPU ms/req | peak RSS MB (largest process) | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for label, r in rows.items():
            if "failed" in r:
                lines.append(f"| {label} | failed: {r['failed'][:80]} | | | | | |")
                continue
            lines.append(f"| {label} | {fmt_rps(r['rps'])} | {fmt_ms(r['lat_ms']['p50'])} | {fmt_ms(r['lat_ms']['p99'])} | "
                         f"{r.get('server_cpu_ms_per_req') or 0:.3f} | {r.get('peak_rss_mb', 0):.1f} | {r['errors']} |")
        lines.append("")
    acct = {label: r["cpu"] for label, r in (tp.get("workers (wrk)") or {}).items() if "cpu" in r}
    if acct:
        names = list(next(iter(acct.values()))["cores"])
        lines += ["## Where the 2 cores went during the wrk rows (CPU time / wall time, in cores)", "",
                  "| server | " + " | ".join(names) + " | machine busy | machine idle |",
                  "|---|" + "---:|" * (len(names) + 2)]
        for label, c in acct.items():
            lines.append(f"| {label} | " + " | ".join(f"{c['cores'].get(n, 0):.2f}" for n in names) +
                         f" | {c['machine_busy_cores']:.2f} | {c['machine_idle_cores']:.2f} |")
        lines.append("")
    st = out.get("streams", {})
    if st:
        first = next(iter(st.values()))
        lines += [f"## Concurrent paced streams (20 chunks, 100 ms apart; first requests spread over "
                  f"{first.get('stagger_s', 1.0)} s, then closed loop)", "",
                  "| server | concurrent | streams done | stalls (gap > 1 s) | longest gap ms | TTFT p50 ms | TTFT p99 ms | "
                  "total p99 ms | peak RSS MB | gateway CPU ms/stream | errors |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for label, r in st.items():
            if "failed" in r:
                lines.append(f"| {label} | failed: {r['failed'][:80]} ||||||||||")
                continue
            lines.append(f"| {label} | {r['peak_open']} | {r['streams']} | {r['stalls']} | {fmt_ms(r['max_gap_ms'])} | "
                         f"{fmt_ms(r['ttft_ms']['p50'])} | {fmt_ms(r['ttft_ms']['p99'])} | {fmt_ms(r['total_ms']['p99'])} | "
                         f"{fmt_ms(r.get('peak_rss_mb'))} | {_cpu_per_stream(r)} | {r['errors']} |")
        lines.append("")
    rounds = out.get("rounds") or []
    if len(rounds) > 1:
        e1, e2 = "embedded, 1 worker (in-process limiter)", "embedded, 2 workers (shared-memory limiter)"
        lines += [f"## Embedded, 2 workers vs 1: {len(rounds)} rounds, alternating (round 1 = the rows above)", "",
                  "| round | 1 worker, wrk | 2 workers, wrk | ratio (wrk) | 1 worker, loadgen | 2 workers, loadgen | "
                  "ratio (loadgen) |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for i, r in enumerate(rounds, 1):
            cells = []
            for tool in ("wrk", "loadgen"):
                x, y = r[e1].get(tool), r[e2].get(tool)
                cells += [fmt_rps(x) if x else "-", fmt_rps(y) if y else "-", _ratio(y, x)]
            lines.append(f"| {i} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Targets (issue 15)", "", "| target | measured | limit | holds |", "|---|---|---|---|"]

    def rps(group, label):
        r = tp.get(group, {}).get(label) or {}
        return r.get("rps")

    def target(name, value, limit, ok):
        lines.append(f"| {name} | {value} | {limit} | {'-' if ok is None else 'yes' if ok else 'no'} |")
    for w, tool in (("workers (wrk)", "wrk"), ("workers", "loadgen.py")):
        if not tp.get(w):
            continue
        for label1, label2, name in (
                ("embedded, 1 worker (in-process limiter)", "embedded, 2 workers (shared-memory limiter)",
                 "embedded: 2 workers vs 1 (the default limiters: shared memory, in-process)"),
                ("embedded, 1 worker (in-process limiter)", "embedded, 2 workers (Redis limiter)",
                 "embedded: 2 workers (Redis limiter) vs 1 (in-process limiter)"),
                ("embedded, 1 worker (Redis limiter)", "embedded, 2 workers (Redis limiter)",
                 "embedded: 2 workers vs 1 (both with the Redis limiter)"),
                ("PostgreSQL + Redis, 1 worker", "PostgreSQL + Redis, 2 workers", "PostgreSQL + Redis: 2 workers vs 1")):
            a, b = rps(w, label1), rps(w, label2)
            target(f"{name}; load from {tool}", _ratio(b, a), ">= 1.7x", None if not (a and b) else b / a >= 1.7)
    for tool in ("wrk", "loadgen") if len(rounds) > 1 else ():
        ratios = sorted(r[e2][tool] / r[e1][tool] for r in rounds if r[e1].get(tool) and r[e2].get(tool))
        if ratios:
            med = statistics.median(ratios)
            target(f"embedded: 2 workers vs 1, median of {len(ratios)} alternating rounds; load from {tool}",
                   f"{med:.2f}x (rounds: {', '.join(f'{x:.2f}' for x in ratios)})", ">= 1.7x", med >= 1.7)
    pg1 = acct.get("PostgreSQL + Redis, 1 worker")
    if pg1 and pg1.get("machine_busy_cores"):
        # the most any number of workers can reach here: every core busy at the 1-worker CPU cost per request
        bound = out["conditions"]["cpus"] / pg1["machine_busy_cores"]
        target("PostgreSQL + Redis: the most 2 workers can reach over 1 on this machine (cores / cores the "
               "1-worker row kept busy: gateway, PostgreSQL, Redis, upstream, wrk)", f"{bound:.2f}x", "(bound)", None)
    a, b = rps("pinned", "embedded, 1 worker"), rps("pinned", "PostgreSQL + Redis, 1 worker")
    if tp.get("pinned"):
        target("PostgreSQL + Redis vs embedded (pinned)", "-" if not (a and b) else f"{b / a:.0%}", ">= 60%",
               None if not (a and b) else b / a >= 0.6)
    d, g = st.get("direct (upstream)"), st.get("Router One, 1 worker (embedded)")
    if d and g and "failed" not in d and "failed" not in g:
        n = f"{g['concurrency']:,} streams, one worker"
        target(f"{n}: stalls", f"{g['stalls']} of {g['streams']} (longest gap {fmt_ms(g['max_gap_ms'])} ms)",
               "0", g["stalls"] == 0 and g["errors"] == 0)
        added = (g["ttft_ms"]["p99"] or 0) - (d["ttft_ms"]["p99"] or 0)
        target(f"{n}: TTFT p99 added over direct", f"{added:+.1f} ms", "<= 50 ms", added <= 50)
        target(f"{n}: peak RSS", f"{g.get('peak_rss_mb', 0):.1f} MB", "<= 300 MB",
               g.get("peak_rss_mb", 0) <= 300)
    d, g = st.get("direct (upstream), keep-alive clients"), st.get("Router One, 1 worker (embedded), keep-alive clients")
    if d and g and "failed" not in d and "failed" not in g:
        added = (g["ttft_ms"]["p99"] or 0) - (d["ttft_ms"]["p99"] or 0)
        target(f"{g['concurrency']:,} streams, one worker, keep-alive clients: TTFT p99 added over direct",
               f"{added:+.1f} ms ({g['stalls']} stalls of {g['streams']})", "(reported)", None)
    one, topo = rps("pinned", "PostgreSQL + Redis, 1 worker"), rps("topology", "nginx + 3 instances (PostgreSQL + Redis)")
    if topo:
        target("nginx + 3 instances vs one instance (PostgreSQL + Redis, c=64)", _ratio(topo, one), "(reported)", None)
    lines.append("")
    return "\n".join(lines)
