"""PNG plots for `run_eval`: matplotlib when installed (imported lazily, `pip install
routerone[train]`), otherwise a plain stdlib raster (curves and axes, no text) so a PNG is always
written."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

COLOURS = {"learned": (31, 119, 180), "auto": (31, 119, 180), "random_same_mix": (127, 127, 127), "random": (127, 127, 127), "oracle": (44, 160, 44),
           "zero_router": (214, 39, 40), "weak": (150, 150, 150), "strong": (214, 39, 40)}


def _series(result: dict) -> list[tuple[str, str, str, str, list, list]]:
    """[(file, title, xlabel, ylabel, [(name, xs, ys, style)], [(label, x, y)])]"""
    plots = []
    two = result.get("two_model")
    if two:
        lines = [(name, [p[0] for p in r["curve"]], [p[1] for p in r["curve"]], "-")
                 for name, r in two["routers"].items() if "curve" in r]
        lines.append(("weak", [0, 100], [two["weak_quality"]] * 2, ":"))
        lines.append(("strong", [0, 100], [two["strong_quality"]] * 2, ":"))
        plots.append(("routellm_curve.png", "Quality vs strong-model calls (test set)",
                      "strong-model calls (%)", "quality", lines, []))
    multi = result.get("multi_model")
    if multi:
        lines = []
        for name, r in multi["routers"].items():
            if "points" in r:
                lines.append((f"{name} (points)", [p[0] for p in r["points"]],
                              [p[1] for p in r["points"]], "."))
            lines.append((f"{name} hull", [p[0] for p in r["hull"]], [p[1] for p in r["hull"]],
                          "--" if name not in ("learned", "auto") else "-"))
        singles = [(m, v["cost_micros_per_prompt"], v["quality"])
                   for m, v in multi["single_models"].items()]
        plots.append(("cost_quality.png", "Cost-quality curve (test set)",
                      "mean cost per prompt (micro-USD)", "mean quality", lines, singles))
    return plots


def write_plots(result: dict, out_dir: Path) -> list[str]:
    written = []
    for name, title, xlabel, ylabel, lines, singles in _series(result):
        path = out_dir / name
        try:
            _matplotlib(path, title, xlabel, ylabel, lines, singles)
        except ImportError:
            _raster(path, lines, singles)
        written.append(str(path))
    return written


def _matplotlib(path, title, xlabel, ylabel, lines, singles) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 6))
    for name, xs, ys, style in lines:
        base = name.split(" ")[0]
        colour = [c / 255 for c in COLOURS.get(base, (0, 0, 0))]
        if style == ".":
            ax.plot(xs, ys, ".", color=colour, alpha=0.5, label=name)
        else:
            ax.plot(xs, ys, style, color=colour, label=name, marker="x" if style == "-" else None)
    for label, x, y in singles:
        ax.scatter([x], [y], color="black", s=15)
        ax.annotate(label.rsplit("/", 1)[-1], (x, y), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _raster(path, lines, singles, width: int = 640, height: int = 420) -> None:
    pix = bytearray(b"\xff" * (width * height * 3))
    xs = [x for _, lx, _, _ in lines for x in lx] + [s[1] for s in singles]
    ys = [y for _, _, ly, _ in lines for y in ly] + [s[2] for s in singles]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    pad = 30

    def to_px(x, y):
        return (int(pad + (x - x0) / (x1 - x0) * (width - 2 * pad)),
                int(height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)))

    def dot(px, py, colour, r=0):
        for dx in range(-r, r + 1):
            for dy in range(-r, r + 1):
                if 0 <= px + dx < width and 0 <= py + dy < height:
                    i = ((py + dy) * width + px + dx) * 3
                    pix[i:i + 3] = bytes(colour)

    def segment(a, b, colour):
        steps = max(abs(b[0] - a[0]), abs(b[1] - a[1]), 1)
        for k in range(steps + 1):
            dot(a[0] + (b[0] - a[0]) * k // steps, a[1] + (b[1] - a[1]) * k // steps, colour)

    segment((pad, height - pad), (width - pad, height - pad), (0, 0, 0))
    segment((pad, pad), (pad, height - pad), (0, 0, 0))
    for name, lx, ly, style in lines:
        colour = COLOURS.get(name.split(" ")[0], (0, 0, 0))
        pts = [to_px(x, y) for x, y in zip(lx, ly)]
        if style == ".":
            for p in pts:
                dot(*p, colour, 1)
        else:
            for a, b in zip(pts, pts[1:]):
                segment(a, b, colour)
    for _, x, y in singles:
        dot(*to_px(x, y), (0, 0, 0), 2)
    raw = b"".join(b"\x00" + bytes(pix[r * width * 3:(r + 1) * width * 3]) for r in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    Path(path).write_bytes(png)
