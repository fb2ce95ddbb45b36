"""How FlowDetector's defaults were chosen, without test data (docs/anomaly.md, "How the defaults were chosen").

Inner validation split of the digits *training* split (75 % / 25 %, seed 1), leave-one-class-out on
the hard classes 1, 9 and 3 (the VAE study's protocol): train each flow variant on the other nine
classes of the 75 % part, report the AUROC on the 25 % part, the last epoch's training NLL and the
held-out normal NLL (nats per image; the training NLL is on dequantized data, an epoch average).

    OMP_NUM_THREADS=1 python benchmarks/anomaly_flow_study.py > benchmarks/results/anomaly/flow_study.txt
"""

import time

import numpy as np
from sklearn.metrics import roc_auc_score

from vaekit import data
from vaekit.detectors.flows import FlowDetector

VARIANTS = {
    "maf logit e30": dict(flow="maf", epochs=30, preprocess="logit"),
    "maf logit e10": dict(flow="maf", epochs=10, preprocess="logit"),
    "maf std e30": dict(flow="maf", epochs=30, preprocess="standardize"),
    "maf std e10": dict(flow="maf", epochs=10, preprocess="standardize"),
    "maf logit e30 wd1e-4 h128": dict(flow="maf", epochs=30, hidden=(128, 128), weight_decay=1e-4, preprocess="logit"),
    "nsf std e10": dict(flow="nsf", transforms=3, hidden=(128, 128), epochs=10, preprocess="standardize"),
    "nsf logit e10": dict(flow="nsf", transforms=3, hidden=(128, 128), epochs=10, preprocess="logit"),
}


def main() -> None:
    train = data.load("digits", "train")
    y, x = train.labels["digit"].numpy(), train.x.numpy()
    order = np.random.default_rng(1).permutation(len(x))
    fit_part, val_part = order[:int(0.75 * len(x))], order[int(0.75 * len(x)):]
    for k in (1, 9, 3):
        x_fit, x_val, is_anomaly = x[fit_part][y[fit_part] != k], x[val_part], y[val_part] == k
        for name, options in VARIANTS.items():
            start = time.process_time()
            detector = FlowDetector(random_state=0, **options).fit(x_fit)
            scores = detector.score_samples(x_val)
            print(k, name, "AUROC", round(roc_auc_score(is_anomaly, -scores), 3),
                  "train nll", round(detector.history_[-1]["train_nll"], 1),
                  "heldout normal nll", round(-scores[~is_anomaly].mean(), 1),
                  round(time.process_time() - start, 1), flush=True)


if __name__ == "__main__":
    main()
