"""Declared look after C-DOMF's LODO GSM8K figure (auto-v8-results.md): the gate of a profile fit on
mmlu, arena and mtbench, on 400 prompts of each set. Needs auto-v8/c-domf.patch.txt applied.

    PYTHONPATH=src .venv/bin/python bench/auto_v8/gate_look.py
"""
import numpy as np, json
from routerone.routing.eval_auto import _fit_router, length_set_for
from routerone.routing.learned.train import default_data_dir, shared_tables
from routerone.routing.learned import domains
tables = shared_tables(default_data_dir())
names = [k for k in tables if k != "gsm8k"]
train = [tables[k] for k in names]
lengths, _ = length_set_for(tables["gsm8k"].prompts, held_out=("gsm8k",))
r = _fit_router(train, lengths)
a = r.artefact
T = a.table_levels.shape[0]
out = {"tables": names, "levels_dev": a.table_levels.tolist()}
for k in list(tables):
    P = tables[k].prompts[:400]
    S = np.array([a.scorer.score(p) for p in P])
    s = S[:, -T:]
    p = 1/(1+np.exp(-np.clip(s,-50,50)))
    g = p / np.maximum(p.sum(1, keepdims=True), 1)
    out[k] = {"mean_p": p.mean(0).round(3).tolist(), "mean_sum_p": float(p.sum(1).mean()),
              "share_sum_g_lt_0.5": float((g.sum(1) < 0.5).mean()),
              "argmax_counts": np.bincount(p.argmax(1), minlength=T).tolist()}
print(json.dumps(out, indent=1))
