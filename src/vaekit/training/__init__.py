"""Training beyond the point estimate: posterior samplers over weights (SGHMC, SWAG) and the Bayesian VAE."""
