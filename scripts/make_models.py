#!/usr/bin/env python3
"""Generate the small ONNX models Boat's serving crate is tested against.

Writes into models/ (next to this script's parent directory):

  echo.onnx         Identity on a STRING tensor: input "input" [batch] -> output "output" [batch]
  mlp.onnx          sklearn MLPClassifier on iris, zipmap disabled:
                      input "input" FP32 [N, 4] -> "label" INT64 [N], "probabilities" FP32 [N, 3]
  iris_logreg.onnx  sklearn LogisticRegression on iris with the default ZipMap:
                      input "input" FP32 [N, 4] -> "output_label" INT64 [N],
                      "output_probability" sequence<map<int64, float>>
  fixed_batch.onnx  hand-built MatMul+Add with a FIXED batch dim:
                      input "input" FP32 [1, 4] -> output "output" FP32 [1, 2]
  expected.json     inputs (a handful of iris rows) and the outputs onnxruntime
                    computes for them, so the Rust tests compare against known values.

Needs: onnx, skl2onnx, scikit-learn, numpy, onnxruntime (for expected.json)
    pip install onnx skl2onnx scikit-learn onnxruntime==1.31.1

Run from anywhere: python3 scripts/make_models.py
The output is deterministic (fixed seeds), so re-running gives the same models.
"""

import json
import os
import sys

REQUIRED = ["numpy", "onnx", "skl2onnx", "sklearn", "onnxruntime"]


def check_packages():
    missing = []
    for name in REQUIRED:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        pip_names = ["scikit-learn" if m == "sklearn" else m for m in missing]
        sys.stderr.write(
            "missing Python packages: %s\n"
            "install with: pip install %s\n" % (", ".join(missing), " ".join(pip_names))
        )
        sys.exit(1)


check_packages()

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from skl2onnx import convert_sklearn  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "models")
# Opsets every ONNX Runtime >= 1.14 understands.
OPSET = 17
ML_OPSET = 3
IR_VERSION = 8
# Iris rows used for expected.json: a few from each class.
ROWS = [0, 25, 50, 75, 100, 140]


def save(model, name):
    onnx.checker.check_model(model)
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    print("wrote %s (%d bytes)" % (path, os.path.getsize(path)))


def make_echo():
    inp = helper.make_tensor_value_info("input", TensorProto.STRING, ["batch"])
    out = helper.make_tensor_value_info("output", TensorProto.STRING, ["batch"])
    node = helper.make_node("Identity", ["input"], ["output"], name="echo")
    graph = helper.make_graph([node], "echo", [inp], [out])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="boat-make_models"
    )
    model.ir_version = IR_VERSION
    save(model, "echo.onnx")


def make_fixed_batch():
    rng = np.random.default_rng(7)
    w = rng.standard_normal((4, 2)).astype(np.float32)
    b = rng.standard_normal((2,)).astype(np.float32)
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2])
    nodes = [
        helper.make_node("MatMul", ["input", "W"], ["xw"], name="matmul"),
        helper.make_node("Add", ["xw", "B"], ["output"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "fixed_batch",
        [inp],
        [out],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="boat-make_models"
    )
    model.ir_version = IR_VERSION
    save(model, "fixed_batch.onnx")


def sklearn_to_onnx(clf, name, zipmap):
    options = {id(clf): {"zipmap": False}} if not zipmap else None
    model = convert_sklearn(
        clf,
        name,
        initial_types=[("input", FloatTensorType([None, 4]))],
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
        options=options,
    )
    model.ir_version = IR_VERSION
    return model


def run_ort(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"input": x})))


def main():
    os.makedirs(OUT, exist_ok=True)
    make_echo()
    make_fixed_batch()

    iris = load_iris()
    x_all = iris.data.astype(np.float32)
    y_all = iris.target

    mlp = MLPClassifier(hidden_layer_sizes=(8,), random_state=0, max_iter=3000)
    mlp.fit(x_all, y_all)
    save(sklearn_to_onnx(mlp, "mlp", zipmap=False), "mlp.onnx")

    logreg = LogisticRegression(max_iter=1000)
    logreg.fit(x_all, y_all)
    save(sklearn_to_onnx(logreg, "iris_logreg", zipmap=True), "iris_logreg.onnx")

    x = x_all[ROWS]
    mlp_out = run_ort(os.path.join(OUT, "mlp.onnx"), x)
    lr_out = run_ort(os.path.join(OUT, "iris_logreg.onnx"), x)
    fixed_out = [
        run_ort(os.path.join(OUT, "fixed_batch.onnx"), x[i : i + 1])["output"][0].tolist()
        for i in range(len(ROWS))
    ]

    # Sanity: onnxruntime agrees with sklearn.
    assert np.allclose(mlp_out["probabilities"], mlp.predict_proba(x), atol=1e-5)
    assert (mlp_out["label"] == mlp.predict(x)).all()
    lr_probs = np.array([[m[k] for k in range(3)] for m in lr_out["output_probability"]])
    assert np.allclose(lr_probs, logreg.predict_proba(x), atol=1e-5)
    assert (lr_out["output_label"] == logreg.predict(x)).all()

    expected = {
        "about": "outputs computed by onnxruntime %s (Python, intra_op_num_threads=1) "
        "for iris rows %s; regenerate with scripts/make_models.py" % (ort.__version__, ROWS),
        "iris_rows": ROWS,
        "inputs": x.tolist(),
        "mlp": {
            "label": mlp_out["label"].tolist(),
            "probabilities": mlp_out["probabilities"].tolist(),
        },
        "iris_logreg": {
            "output_label": lr_out["output_label"].tolist(),
            "output_probability": [
                {str(k): float(v) for k, v in sorted(m.items())} for m in lr_out["output_probability"]
            ],
        },
        "fixed_batch": {"output": fixed_out},
    }
    path = os.path.join(OUT, "expected.json")
    with open(path, "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print("wrote %s" % path)


if __name__ == "__main__":
    main()
