"""scikit-learn-style detectors built on vaekit models and on normalizing flows."""
