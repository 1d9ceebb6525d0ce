#!/usr/bin/env python3
"""Python Prophet side of the Prophet benchmark (docs/benchmarks.md, "## Prophet").

Fits one Prophet model per target on the training CSV, forecasts every timestamp of the test CSV from the
end of training, and prints JSON with the fit times and forecasts. The Rust side
(`scripts/bench prophet`, i.e. target/release/examples/bench_elborn) runs this script and compares.

Needs `pip install prophet pandas` (scripts/bench makes the venv ~/.cache/flts/bench-venv-prophet).
Settings are those of the Python system FLTS replaces: n_changepoints 50, changepoint prior 0.1,
seasonality prior 20, holidays prior 10, US holidays, everything else Prophet's default.
"""

import argparse
import json
import logging
import resource
import sys
import time

import cmdstanpy
import pandas as pd
import prophet
from prophet import Prophet

DEFAULT_TARGETS = ["rnti_count", "rb_down", "rb_up", "down", "up"]


def cpu_seconds():
    """CPU time (user + system) of this process and its finished children (cmdstan runs as a child)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="/work/shared/data/ElBorn.csv")
    parser.add_argument("--test", default="/work/shared/data/ElBorn_test.csv")
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS), help="comma-separated columns")
    parser.add_argument("--n-changepoints", type=int, default=50)
    parser.add_argument("--changepoint-prior-scale", type=float, default=0.1)
    parser.add_argument("--seasonality-prior-scale", type=float, default=20.0)
    parser.add_argument("--holidays-prior-scale", type=float, default=10.0)
    parser.add_argument("--country-holidays", default="US", help="empty for none")
    args = parser.parse_args()

    # Prophet and cmdstanpy log every fit at INFO.
    logging.getLogger("prophet").setLevel(logging.WARNING)
    cmdstanpy.disable_logging()

    train = pd.read_csv(args.train, parse_dates=["time"])
    test = pd.read_csv(args.test, parse_dates=["time"])
    future = pd.DataFrame({"ds": test["time"]})

    results = {}
    for target in args.targets.split(","):
        model = Prophet(
            n_changepoints=args.n_changepoints,
            changepoint_prior_scale=args.changepoint_prior_scale,
            seasonality_prior_scale=args.seasonality_prior_scale,
            holidays_prior_scale=args.holidays_prior_scale,
        )
        if args.country_holidays:
            model.add_country_holidays(country_name=args.country_holidays)
        history = pd.DataFrame({"ds": train["time"], "y": train[target].astype(float)})
        started, cpu_before = time.perf_counter(), cpu_seconds()
        model.fit(history)
        fit_s = time.perf_counter() - started
        fit_cpu_s = cpu_seconds() - cpu_before
        started = time.perf_counter()
        forecast = model.predict(future)
        predict_s = time.perf_counter() - started
        results[target] = {
            "fit_s": fit_s,
            "fit_cpu_s": fit_cpu_s,
            "predict_s": predict_s,
            "yhat": forecast["yhat"].tolist(),
            "lower": forecast["yhat_lower"].tolist(),
            "upper": forecast["yhat_upper"].tolist(),
        }
        print(f"{target}: fit {fit_s:.2f} s (CPU {fit_cpu_s:.2f} s), predict {predict_s:.2f} s", file=sys.stderr)

    json.dump({"prophet_version": prophet.__version__, "targets": results}, sys.stdout)


if __name__ == "__main__":
    main()
