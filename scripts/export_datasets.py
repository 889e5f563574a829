#!/usr/bin/env python3
"""Export scikit-learn's bundled toy datasets as plain CSV files for Boat.

Writes five files into datasets/ at the repository root (next to this
script's parent directory):

  iris.csv           classification, 150 rows, 4 features, 3 classes
  wine.csv           classification, 178 rows, 13 features, 3 classes
  breast_cancer.csv  classification, 569 rows, 30 features, 2 classes
  digits.csv         classification, 1797 rows, 64 features, 10 classes
  diabetes.csv       regression, 442 rows, 10 features

The data come from the copies bundled inside the scikit-learn wheel
(sklearn.datasets.load_*), so no network access is needed.

CSV format:
  * the first line is a header; feature names are lowercased and reduced to
    [a-z0-9_] (any other run of characters becomes one "_", leading and
    trailing "_" are stripped) and made unique with a numeric suffix;
  * the last column is "target": the integer class index (0..k-1) for the
    classification sets, the numeric target for diabetes;
  * a column whose values are all integral is written as integers (e.g. the
    digits pixels); other columns use Python's shortest round-trip float
    formatting, repr(float(x));
  * no index column, no quoting, "\\n" line endings, a trailing newline.

The output is deterministic: re-running gives byte-identical files.

Needs: scikit-learn (and numpy), e.g. pip install scikit-learn
Run from anywhere: python3 scripts/export_datasets.py
"""

import math
import os
import re
import sys

try:
    from sklearn import datasets
except ImportError:
    sys.stderr.write(
        "missing Python package: sklearn\ninstall with: pip install scikit-learn\n"
    )
    sys.exit(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "datasets")

# (file stem, loader, is classification)
DATASETS = [
    ("iris", datasets.load_iris, True),
    ("wine", datasets.load_wine, True),
    ("breast_cancer", datasets.load_breast_cancer, True),
    ("digits", datasets.load_digits, True),
    ("diabetes", datasets.load_diabetes, False),
]


def sanitize(name):
    """Lowercase and reduce a feature name to [a-z0-9_], collapsing runs of '_'."""
    s = re.sub(r"[^a-z0-9]+", "_", str(name).lower())
    s = re.sub(r"_+", "_", s).strip("_")
    return s or "feature"


def unique_names(raw_names):
    """Sanitize feature names and make them unique (never 'target')."""
    seen = {"target"}
    names = []
    for i, raw in enumerate(raw_names):
        base = sanitize(raw) if raw is not None else "feature_%d" % i
        name = base
        n = 2
        while name in seen:
            name = "%s_%d" % (base, n)
            n += 1
        seen.add(name)
        names.append(name)
    return names


def column_formatter(values):
    """Return a function formatting one value of this column.

    Integral columns are written as ints, everything else as repr(float).
    """
    floats = [float(v) for v in values]
    for v in floats:
        if not math.isfinite(v):
            raise ValueError("non-finite value %r in dataset" % v)
    if all(v.is_integer() for v in floats):
        return lambda v: str(int(float(v)))
    return lambda v: repr(float(v))


def export(stem, loader, classification):
    bunch = loader()
    data = bunch.data
    target = bunch.target
    rows, ncols = data.shape
    if len(target) != rows:
        raise ValueError("%s: %d rows but %d targets" % (stem, rows, len(target)))

    raw_names = getattr(bunch, "feature_names", None)
    raw_names = [None] * ncols if raw_names is None else [str(n) for n in raw_names]
    if len(raw_names) != ncols:
        raise ValueError("%s: %d columns but %d names" % (stem, ncols, len(raw_names)))
    header = unique_names(raw_names) + ["target"]

    formatters = [column_formatter(data[:, j]) for j in range(ncols)]
    if classification:
        classes = sorted({int(t) for t in target})
        if classes != list(range(len(classes))):
            raise ValueError("%s: class labels are not 0..k-1: %r" % (stem, classes))
        fmt_target = lambda v: str(int(v))  # noqa: E731
    else:
        fmt_target = column_formatter(target)

    lines = [",".join(header)]
    for i in range(rows):
        cells = [formatters[j](data[i, j]) for j in range(ncols)]
        cells.append(fmt_target(target[i]))
        lines.append(",".join(cells))
    text = "\n".join(lines) + "\n"

    path = os.path.join(OUT, stem + ".csv")
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(text)
    size = os.path.getsize(path)
    print("%s: %d rows, %d features, %d bytes" % (os.path.relpath(path, ROOT), rows, ncols, size))


def main():
    os.makedirs(OUT, exist_ok=True)
    for stem, loader, classification in DATASETS:
        export(stem, loader, classification)


if __name__ == "__main__":
    main()
