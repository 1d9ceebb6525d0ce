"""Tables of scripts/bench-forecast: test NRMSE (mean of down and up) per
model type and for the promoted model, per dataset and seed, from the
decision.json files eval --once wrote. Standard library only."""
import json
import sys
from pathlib import Path

TARGETS = ["down", "up"]


def mean_nrmse(per_target):
    vals = [per_target.get(t) for t in TARGETS]
    return None if any(v is None for v in vals) else sum(vals) / len(vals)


def fmt(v):
    return "-" if v is None else f"{v:.3f}"


def main(out, datasets):
    out = Path(out)
    print("| dataset | seed | GRU | LSTM | PROPHET | promoted | promoted NRMSE | last value | seasonal naive |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ds in datasets:
        promoted_scores = []
        for decision_path in sorted((out / ds).glob("*/decision.json")):
            d = json.loads(decision_path.read_text())
            cands = d["outcome"]["candidates"]
            by_type = {c["model_type"]: mean_nrmse(c.get("test_nrmse", {})) for c in cands}
            winner = d["outcome"].get("winner")
            w = cands[winner] if winner is not None else None
            promoted = mean_nrmse(w.get("test_nrmse", {})) if w else None
            naive = d.get("naive_test_nrmse", {})
            last = mean_nrmse({t: (naive.get(t) or {}).get("last_value") for t in TARGETS})
            seasonal = mean_nrmse({t: (naive.get(t) or {}).get("seasonal_naive") for t in TARGETS})
            if promoted is not None:
                promoted_scores.append(promoted)
            print(
                f"| {ds} | {decision_path.parent.name} | {fmt(by_type.get('GRU'))} | {fmt(by_type.get('LSTM'))} | "
                f"{fmt(by_type.get('PROPHET'))} | {w['model_type'] if w else 'none'} | {fmt(promoted)} | "
                f"{fmt(last)} | {fmt(seasonal)} |"
            )
        if promoted_scores:
            mean, best = sum(promoted_scores) / len(promoted_scores), min(promoted_scores)
            print(f"| {ds} | mean / best | | | | | {mean:.3f} / {best:.3f} ({100 * (mean / best - 1):.1f}% above best) | | |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
