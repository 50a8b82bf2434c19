"""ZeroEval (yuchenlin/ZeroEval, Apache-2.0) per-model outputs -> one eval-routing row per (task, item).

    python -m routerone.routing.learned.train prepare --dataset zeroeval --source SNAPSHOT --out DIR

`result_dirs/<task>/<model>.json` holds one model's greedy, zero-shot answers (a JSON object with
`reasoning` and `answer` asked for) to every item of a task. Each answer is judged here the way the
repository's own scripts judge it (`src/evaluation/math_eval.py` for gsm and math-l5,
`src/evaluation/crux_eval.py` for crux; re-implemented from their behaviour, not copied):
  * the answer is the `answer` of the first complete top-level `{...}` in the output (newlines
    removed before JSON parsing); else the first `"answer": "..."`-like match (quoted, quoted
    across lines, unquoted, unquoted key); else, for models whose file name holds "Llama-3.1", the
    first `\\boxed{...}` when "boxed" is in the last 30 characters; else no answer (wrong);
  * math: `$`, `,` removed, a value with `/` evaluated as arithmetic when it parses; correct when the
    first numbers (`-?\\d+(\\.\\d+)?`) of the answer and of the reference (`#` removed) are equal;
  * crux: `str(answer)` stripped of quotes (newlines written `\\n`) equals the reference stripped of
    quotes (both empty also counts as correct);
  * accuracy = correct / items in the file (as the summaries compute it).
`task_accuracies` gives the per-model accuracy for the check against `result_dirs/<task>.summary.json`.
MMLU-Redux and ZebraLogic are left out (see learned/PROVENANCE.md: their result files are absent
from the snapshot), and `result_dirs/alpaca_eval/` is never listed or read.

Prices: ZeroEval has none; `PRICE_IDS` maps its models to genai-prices (provider, model) entries, the
list prices Router One bills with (bundled snapshot; billing/pricebook.py). Models not there get no
price (eval-routing leaves them out of the cost figures). Output tokens: the o200k token count of
the output text (the visible answer; o1 models' hidden reasoning is not in it).
"""
from __future__ import annotations

import ast
import json
import operator
import re
import subprocess

from .external import Prepared, Source

TASKS = {    # task folder -> (judge, prompt field of an item)
    "gsm": ("math", "question"),
    "math-l5": ("math", "problem"),
    "crux": ("crux", "question"),
}
LEFT_OUT = {"mmlu-redux": "result files absent from the snapshot (0 of 55 blobs at HEAD)",
            "zebra-grid": "result files absent from the snapshot (60 of 61 blobs at HEAD)"}
PRICE_IDS = {   # summary model name -> (genai-prices provider, model id): the vendor's own list price
    # for closed models, OpenRouter's (Together's for the @together file) for open-weight ones; only
    # the same model (no "-exp" previews, no other context-length variant, no renamed DeepSeek)
    "gpt-4o-2024-08-06": ("openai", "gpt-4o-2024-08-06"),
    "gpt-4o-2024-05-13": ("openai", "gpt-4o-2024-05-13"),
    "gpt-4o-mini-2024-07-18": ("openai", "gpt-4o-mini-2024-07-18"),
    "chatgpt-4o-latest-24-09-07": ("openai", "chatgpt-4o-latest"),
    "gpt-4-turbo-2024-04-09": ("openai", "gpt-4-turbo-2024-04-09"),
    "gpt-4-0314": ("openai", "gpt-4-0314"),
    "gpt-3.5-turbo-0125": ("openai", "gpt-3.5-turbo-0125"),
    "o1-mini-2024-09-12": ("openai", "o1-mini-2024-09-12"),
    "o1-preview-2024-09-12": ("openai", "o1-preview-2024-09-12"),
    "claude-3-5-sonnet-20240620": ("anthropic", "claude-3-5-sonnet-20240620"),
    "claude-3-opus-20240229": ("anthropic", "claude-3-opus-20240229"),
    "claude-3-sonnet-20240229": ("anthropic", "claude-3-sonnet-20240229"),
    "claude-3-haiku-20240307": ("anthropic", "claude-3-haiku-20240307"),
    "gemini-1.5-pro": ("google", "gemini-1.5-pro"),
    "gemini-1.5-flash": ("google", "gemini-1.5-flash"),
    "Mistral-Large-2": ("mistral", "mistral-large-2407"),
    "command-r-plus": ("cohere", "command-r-plus"),
    "command-r": ("cohere", "command-r"),
    "Mistral-Nemo-Instruct-2407": ("openrouter", "mistralai/mistral-nemo"),
    "Mixtral-8x7B-Instruct-v0.1": ("openrouter", "mistralai/mixtral-8x7b-instruct"),
    "Meta-Llama-3.1-70B-Instruct": ("openrouter", "meta-llama/llama-3.1-70b-instruct"),
    "Meta-Llama-3.1-8B-Instruct": ("openrouter", "meta-llama/llama-3.1-8b-instruct"),
    "Meta-Llama-3-70B-Instruct": ("openrouter", "meta-llama/llama-3-70b-instruct"),
    "Meta-Llama-3-8B-Instruct": ("openrouter", "meta-llama/llama-3-8b-instruct"),
    "Llama-3.1-405B-Inst-fp8@together": ("together", "meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo"),
    "Llama-3.1-405B-Inst@hyperbolic": ("openrouter", "meta-llama/llama-3.1-405b-instruct"),
    "Qwen2-72B-Instruct": ("openrouter", "qwen/qwen-2-72b-instruct"),
    "Qwen2.5-72B-Instruct": ("openrouter", "qwen/qwen-2.5-72b-instruct"),
    "Qwen2.5-7B-Instruct": ("openrouter", "qwen/qwen-2.5-7b-instruct"),
    "gemma-2-27b-it": ("openrouter", "google/gemma-2-27b-it"),
    "gemma-2-9b-it": ("openrouter", "google/gemma-2-9b-it"),
    "Phi-3.5-mini-instruct": ("openrouter", "microsoft/phi-3.5-mini-128k-instruct"),
    "yi-large": ("openrouter", "01-ai/yi-large"),
}
NO_ANSWER = object()     # no answer found (a JSON null answer is the value None)
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_BOXED = re.compile(r"\\boxed{([\w\d]+)}")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.USub: operator.neg, ast.UAdd: operator.pos}


def first_json_object(text: str) -> dict | None:
    """The first complete top-level {...} of `text` parsed as JSON (newlines removed), else None."""
    depth, start = 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0 and start is None:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                try:
                    return json.loads(text[start:i + 1].replace("\n", ""))
                except json.JSONDecodeError:
                    return None
    return None


def loose_values(text: str, keys=("reasoning", "answer")) -> dict:
    """`"key": value` pairs found by pattern when the output is not valid JSON."""
    found = {}
    for key in keys:
        k = re.escape(key)
        for pattern, flags in ((f'"{k}"\\s*:\\s*"([^"]*?)"', 0), (f'"{k}"\\s*:\\s*"(.*?)"', re.DOTALL),
                               (f'"{k}"\\s*:\\s*([^,\\s]*)', 0), (f'{k}\\s*:\\s*([^,\\s]*)', 0)):
            m = re.search(pattern, text, flags)
            if m:
                found[key] = m.group(1)
                break
    return found


def extract_answer(model: str, output: str):
    """The model's answer (any JSON value) or NO_ANSWER when none is found."""
    parsed = first_json_object(output)
    if not isinstance(parsed, dict) or "answer" not in parsed:
        parsed = loose_values(output)
    if "answer" in parsed:
        return parsed["answer"]
    if "Llama-3.1" in model and "boxed" in output[-30:]:
        m = _BOXED.search(output)
        if m and m.group(1):
            return m.group(1)
    return NO_ANSWER


def _arith(node):
    if isinstance(node, ast.Expression):
        return _arith(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_arith(node.left), _arith(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_arith(node.operand))
    raise ValueError("not arithmetic")


def sanitize_math(answer: str) -> str:
    answer = answer.replace("$", "").strip().replace(",", "")
    if "/" in answer:
        try:
            answer = str(float(_arith(ast.parse(answer, mode="eval"))))
        except (ValueError, SyntaxError, TypeError, ZeroDivisionError, OverflowError, RecursionError):
            pass
    return answer


def judge_math(answer, reference: str) -> bool:
    if answer is NO_ANSWER:
        return False
    got = _NUMBER.search(sanitize_math(str(answer)))
    want = _NUMBER.search(sanitize_math(reference.replace("#", "").strip()))
    return bool(got and want and float(got.group()) == float(want.group()))


def judge_crux(answer, reference, before_fixes: bool = False) -> bool:
    """crux_eval.py at HEAD; `before_fixes`: as before its 2024-09-22 fixes (f37c3f9: both empty is
    correct; e200bab: newlines in the answer written `\\n`), the rules the HEAD summary was made with."""
    if answer is NO_ANSWER:
        return False
    got = str(answer).strip("'\"")
    want = str(reference).strip("'\"")
    if before_fixes:
        return bool(got) and got == want
    return got.replace("\n", "\\n") == want


JUDGES = {"math": judge_math, "crux": judge_crux}


def _output_text(item: dict) -> str:
    out = item.get("output")
    if isinstance(out, list):
        out = out[0] if out else ""
    return out if isinstance(out, str) else ""


def judged_files(src: Source, before_fixes: bool = False):
    """(task, model, [(item id, prompt, correct, output text)], path) per readable result file
    (`before_fixes`: crux judged as the HEAD summary was, see judge_crux)."""
    for task, (judge, field) in TASKS.items():
        try:
            files = [f for f in src.list(f"result_dirs/{task}") if f.endswith(".json")]
        except subprocess.CalledProcessError:
            continue
        for rel in files:
            text = src.read(rel)
            if text is None:
                continue
            model = rel.rsplit("/", 1)[1][:-len(".json")]
            items = []
            for item in json.loads(text):
                out = _output_text(item)
                args = (before_fixes,) if judge == "crux" else ()
                ok = JUDGES[judge](extract_answer(model, out), item.get("answer", ""), *args)
                items.append((str(item.get("id", item.get("session_id"))), item.get(field), ok, out))
            yield task, model, items, rel


def task_accuracies(src: Source, before_fixes: bool = False) -> dict[str, dict[str, float]]:
    """{task: {model file name: accuracy in percent}} (for the check against the summaries)."""
    acc: dict[str, dict[str, float]] = {}
    for task, model, items, _ in judged_files(src, before_fixes):
        acc.setdefault(task, {})[model] = 100.0 * sum(ok for *_, ok, _o in items) / max(1, len(items))
    return acc


def summary_check(src: Source, before_fixes: bool = False) -> dict[str, dict[str, tuple[float, float | None]]]:
    """{task: {summary model name: (our accuracy, result_dirs/<task>.summary.json's "Acc" or None)}}."""
    out: dict[str, dict[str, tuple[float, float | None]]] = {}
    for task, by_model in task_accuracies(src, before_fixes).items():
        rows = json.loads(src.read(f"result_dirs/{task}.summary.json") or "[]")
        summary = {r.get("Model"): r.get("Acc") for r in rows}
        out[task] = {}
        for stem, acc in by_model.items():
            name = summary_name(stem)
            theirs = summary.get(name)
            out[task][name] = (acc, float(theirs) if theirs is not None else None)
    return out


def summary_name(model: str) -> str:
    """The name the repository's summaries give a result file (eval_utils' renaming)."""
    for old, new in (("gemma-2-9b-it@nvidia", "gemma-2-9b-it"), ("gemma-2-9b-it@together", "gemma-2-9b-it"),
                     ("gemma-2-27b-it@together", "gemma-2-27b-it"), ("gemma-2-27b-it@nvidia", "gemma-2-27b-it"),
                     ("deepseek-chat", "deepseek-v2-chat-0628"), ("deepseek-coder", "deepseek-v2-coder-0614"),
                     ("DeepSeek-Coder-V2-0724", "deepseek-v2-coder-0724"),
                     ("Llama-3.1-405B-Inst-fp8", "Llama-3.1-405B-Inst-fp8@together"),
                     ("Llama-3.1-405B-Instruct-Turbo", "Llama-3.1-405B-Inst-fp8@together"),
                     ("Meta-Llama-3.1-405B-Instruct@hyperbolic", "Llama-3.1-405B-Inst@hyperbolic")):
        model = model.replace(old, new)
    return model


def list_prices(models) -> dict:
    """{model: (input, output, source)} USD per 1M tokens from genai-prices, for the models it knows."""
    from ...billing.pricebook import genai_prices_version, lookup_price
    prices = {}
    for m in models:
        if m in PRICE_IDS:
            provider, mid = PRICE_IDS[m]
            p = lookup_price(provider, mid)
            if p is not None:
                prices[m] = (p.input_micros_per_mtok / 1e6, p.output_micros_per_mtok / 1e6,
                             f"genai-prices {genai_prices_version()} {provider}:{mid}")
    return prices


def load_zeroeval(src: Source) -> Prepared:
    from .train import _token_counter
    count = _token_counter()
    rows: dict[tuple[str, str], dict] = {}
    models: dict[str, None] = {}
    used, absent = [], []
    for task, stem, items, rel in judged_files(src):
        model = summary_name(stem)     # one column per model across tasks (deepseek-chat = deepseek-v2-chat-0628)
        if any(r.get("task") == task and model in r for r in rows.values()):
            absent.append(f"{rel} (a second file of {model})")
            continue
        used.append(rel)
        models.setdefault(model, None)
        for qid, prompt, ok, out in items:
            if not isinstance(prompt, str) or not prompt.strip():
                continue
            row = rows.setdefault((task, qid), {"prompt": prompt, "task": task})
            if model not in row:
                row[model] = 1.0 if ok else 0.0
                row[f"{model}|output_tokens"] = count(out)
    for task in TASKS:
        try:
            absent += [f for f in src.list(f"result_dirs/{task}") if f.endswith(".json") and f not in used
                       and not any(a.startswith(f + " ") for a in absent)]
        except subprocess.CalledProcessError:
            pass
    if not rows:
        raise ValueError(f"{src.path}: no readable result_dirs/{{{','.join(TASKS)}}}/*.json")
    notes = [f"task {t} left out: {why}" for t, why in LEFT_OUT.items()]
    if absent:
        notes.append("left out (blob absent from the snapshot, or a second file of one model): "
                     + ", ".join(absent))
    notes.append("answers were produced by commercial and open models whose terms of use also apply")
    return Prepared("zeroeval", list(rows.values()), list(models), prices=list_prices(models), notes=notes,
                    provenance={
        "repo": "yuchenlin/ZeroEval", "commit": src.commit, "paths": used,
        "licence": "Apache-2.0 (LICENSE)",
        "transform": "one row per (task, item id); model columns named as the repository's summaries "
                     "name the files (eval_utils' renaming); prompt = the item's question (gsm, crux) or problem "
                     "(math-l5), without ZeroEval's JSON-answer template; per model (file name) 1 when "
                     "the answer is correct as the repository's math_eval.py / crux_eval.py judge it "
                     "(re-implemented in zeroeval.py), else 0 (no answer found counts as wrong); "
                     "`|output_tokens` = o200k tokens of the output text"})
