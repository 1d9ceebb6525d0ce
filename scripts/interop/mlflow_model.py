"""Load a run's model with MLflow's own Python client, as a user would.

    python mlflow_model.py RUN_ID

Needs MLFLOW_TRACKING_URI. Prints one JSON object: what
mlflow.models.get_model_info says (flavors, signature), and for a model with
a python_function flavor the forecasts mlflow.pyfunc.load_model makes for
the model's own input example (input_example.json). tests/interop.rs runs it
with the interop venv of `scripts/stack install` and compares the forecasts
with the inference service's.
"""

import json
import sys

import mlflow
import numpy as np


def main(run_id: str) -> None:
    uri = f"runs:/{run_id}/model"
    info = mlflow.models.get_model_info(uri)
    out = {
        "flavors": sorted(info.flavors),
        "run_id": info.run_id,
        "signature": info.signature.to_dict() if info.signature else None,
        "input_example": info.saved_input_example_info,
    }
    if "python_function" in info.flavors:
        model = mlflow.pyfunc.load_model(uri)
        # A named tensor signature makes MLflow hand the example back as {name: array}.
        example = model.input_example
        if not isinstance(example, dict):
            example = {info.signature.inputs.input_names()[0]: example}
        # JSON numbers come back as float64 or int64; the networks take float32.
        example = {
            k: np.asarray(v, dtype=np.float32) if np.asarray(v).dtype.kind == "f" else np.asarray(v)
            for k, v in example.items()
        }
        prediction = model.predict(example)
        (name, value), = example.items()
        out["input"] = {"name": name, "shape": list(value.shape), "values": value.ravel().tolist()}
        out["prediction"] = {name: np.asarray(v).tolist() for name, v in prediction.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
