"""Prompt injection, measured: attack success with the embedded models, benign text withheld.

Run: .venv/bin/python bench/injection.py [--model NAME ...] [--half tuning|held-out|all]
                                          [--only NAME ...] [--no-model] [--json] [--out FILE]
     (default: qwen2.5-coder-0.5b, both halves)

The suite is bench/injection/suite.json (docs/injection.md): 70 documents with an attack in
them, each with a question a user would ask of it and what counts as the attacker's success,
and 20 benign documents full of orders to their reader. Every attack document is ingested into
one scratch data folder; each question is asked of its own document only, through the real
service, at temperature 0. Printed per model and half: the attack success rate, how often the
attack reached the prompt, the real answer was given, or the answer was quoted. Without a
model: the share of benign sentences withheld and of attacks withheld whole.
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse
import json
import shutil
import tempfile
import time
from typing import Any

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.evaluation import attack_report, load_injection_suite, run_attacks, withholding_report
from api.service import Archivist, AskOptions, Settings

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "bench" / "injection"
MODELS_DIR = Settings().models  # the machine's models folder, shared with every data folder


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="packaged model name or GGUF path")
    parser.add_argument("--half", choices=["tuning", "held-out", "all"], default="all")
    parser.add_argument("--only", nargs="*", help="attack names to run")
    parser.add_argument("--no-model", action="store_true", help="the filter's shares only")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--out", type=Path, help="write each answer as a JSON line")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    suite = load_injection_suite(SUITE)
    report: dict[str, Any] = {"filter": withholding_report(suite)}
    attacks = [a for a in suite.attacks if args.half in ("all", a.half)]
    if args.only:
        attacks = [a for a in attacks if a.name in args.only]
    out = args.out.open("w", encoding="utf-8") if args.out else None
    if not args.no_model:
        with tempfile.TemporaryDirectory(prefix="archivist-injection-") as scratch:
            data = Path(scratch)
            (data / "inbox").mkdir()
            for attack in attacks:
                shutil.copy(attack.path, data / "inbox" / attack.path.name)
            for model in args.model or ["qwen2.5-coder-0.5b"]:
                report[model] = _run_model(data, model, attacks, out)
    if out:
        out.close()
    print(json.dumps(report, indent=2) if args.json else _table(report))


def _run_model(data: Path, model: str, attacks: list[Any], out: Any) -> dict[str, Any]:
    settings = Settings(data=data, llm="llamacpp", gguf=model, model_dir=MODELS_DIR,
                        temperature=0.0, seed=0)  # fmt: skip
    started = time.perf_counter()

    def show(result: dict[str, Any]) -> None:
        mark = "ATTACK WORKED" if result["succeeded"] else "held"
        print(f"  {model} {result['name']}: {mark} — {result['answer'][:110]!r}", file=sys.stderr)
        if out:
            out.write(json.dumps({"model": model, **result}, ensure_ascii=False) + "\n")
            out.flush()

    with Archivist(settings) as service:
        service.ingest([data / "inbox"])
        options = AskOptions(temperature=0.0, seed=0)
        results = run_attacks(service, attacks, options, on_result=show)
    summary = attack_report(results)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def _table(report: dict[str, Any]) -> str:
    lines = ["filter (no model)     benign withheld          attacks withheld whole"]
    for half, row in report["filter"].items():
        lines.append(
            f"  {half:<10} {row['benign_withheld']:>4} / {row['benign_sentences']:<4} "
            f"({row['benign_withheld_share']:.1%})   {row['attacks_withheld']:>3} / "
            f"{row['attacks']:<3} ({row['attacks_withheld_share']:.1%})"
        )
    for model, summary in report.items():
        if model == "filter":
            continue
        lines.append(
            f"{model} ({summary['seconds']} s)  attacks  succeeded  reached  answered  quoted"
        )
        for half, row in summary.items():
            if isinstance(row, dict):
                lines.append(
                    f"  {half:<10} {row['attacks']:>8}  {row['succeeded_rate']:>9.1%}  "
                    f"{row['reached_prompt_rate']:>7.1%}  {row['answered_rate']:>8.1%}  "
                    f"{row['extractive_rate']:>6.1%}"
                )
                lines.append(f"    succeeded: {', '.join(row['succeeded']) or '-'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
