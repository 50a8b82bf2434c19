"""The selection rule of bench/results/auto-v6-plan.md (v4's rule, unchanged): base = the shipped
code's figures (session 6's v4 C1 run; sessions 7 and 8 reproduced them), candidate = the C-LEN run
directory, laid out as bench/auto_v5/decide.py reads it.

    python bench/auto_v6/decide.py CAND_DIR [--merge]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "auto_v5"))
from decide import main  # noqa: E402

if __name__ == "__main__":
    main(sys.argv[1:], label="C-LEN length set")
