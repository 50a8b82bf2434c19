"""Gate behaviour of C-DOMD (bench/results/auto-v13-plan.md), a declared look, not a figure: for
each held-out set S, fit the profiles as `eval-routing --lodo --held-out S` does (the other three
shared sets, the same length set) and report, over S's prompts, the share near no training table,
near each table, and the mean d_t - tau_t.

    PYTHONPATH=<tree with the candidate>/src python bench/auto_v13/near_share.py S [S ...]
"""
import json
import sys

import numpy as np

from routerone.routing.eval_auto import _fit_router, length_set_for
from routerone.routing.learned import domains, features as F
from routerone.routing.learned.train import default_data_dir, shared_tables


def main(held_out: list[str]) -> None:
    tables = shared_tables(default_data_dir())
    for name in held_out:
        test = tables[name]
        train_names = [k for k in tables if k != name]
        lengths, _ = length_set_for(test.prompts, held_out=(name,))
        a = _fit_router([tables[k] for k in train_names], lengths).artefact
        idf = np.asarray(a.scorer.idf, np.float64)
        views = np.array([domains.sketch(idf, a.scorer.dense_mean, a.scorer.dense_std, *F.prompt_features(p))
                          for p in test.prompts])
        d = a.density.distances(views)
        near = d >= a.density.tau
        print(json.dumps({"held_out": name, "prompts": len(test.prompts), "trained_on": train_names,
                          "tau": dict(zip(train_names, np.round(a.density.tau, 4).tolist())),
                          "share_near_no_table": round(float(np.mean(~near.any(axis=1))), 4),
                          "share_near": dict(zip(train_names, np.round(near.mean(axis=0), 4).tolist())),
                          "mean_d_minus_tau": dict(zip(train_names, np.round((d - a.density.tau).mean(axis=0), 4).tolist()))}),
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
