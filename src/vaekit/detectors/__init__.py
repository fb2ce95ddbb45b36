"""scikit-learn-style estimators built on the models: anomaly (and out-of-distribution) detectors."""
