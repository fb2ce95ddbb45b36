"""scikit-learn-style estimators built on the models: out-of-distribution detection (ood)."""
