"""The suite's torch thread count, its Hypothesis profiles, and the fast tier's list of slow tests.

Profiles (``pytest --hypothesis-profile NAME``): ``ci`` (the default: a small example budget, so
tests/test_fuzz_cli.py runs in well under a minute on 2 cores) and ``thorough`` (a long local run:
``python -m pytest tests/test_fuzz_cli.py --hypothesis-profile thorough``).
"""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# One torch thread in the test process and in vaekit's runs (fit, the CLI, their subprocesses,
# through OMP_NUM_THREADS, which vaekit's thread policy obeys): the suite's models are small, its
# two pytest-xdist workers share the 2-core CI machine, and a second thread on a busy core makes a
# step 3-30x slower (benchmarks/threads.py). Tests of the thread choice itself set it explicitly
# (tests/test_threads.py: environ={}, monkeypatch.delenv).
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
# ci: the same examples on every run (derandomized), so CI is deterministic; thorough: a random search.
settings.register_profile("ci", max_examples=12, derandomize=True, **_COMMON)
settings.register_profile("thorough", max_examples=1500, **_COMMON)
settings.load_profile("ci")


# --- The fast tier (issue 29, item 7): `python3 -m pytest -q -m "not slow"` -------------------------------
# CI runs everything; the fast tier leaves out the subprocess and end-to-end tests (a CLI run per test,
# torchrun, Chromium, a benchmark, the Hypothesis CLI fuzzing) and the few unit tests that train for more
# than ~10 s on a loaded 2-core machine (timings of the full suite, 2026-12-07). Listed here rather than
# decorated in each file, so that adding or renaming a test elsewhere needs no edit of this list; a test
# can also say `@pytest.mark.slow` itself.
#: whole files of end-to-end tests
SLOW_FILES = {
    "test_cli.py",
    "test_custom_nets.py",
    "test_disentanglement_cli.py",
    "test_distributed.py",
    "test_docs.py",
    "test_explore_cli.py",
    "test_fast_start.py",
    "test_fuzz_cli.py",
    "test_readme.py",
    "test_report.py",
    "test_sweep.py",
    "test_tracking.py",
}
#: single tests (by function name; every parameter of a parametrised test) in otherwise fast files
SLOW_TESTS = {
    "test_anomaly.py": {
        "test_auto_keeps_tabular_data_bounded_in_the_unit_interval",
        "test_benchmark_command_writes_table_json_and_figure_and_resumes",
    },
    "test_avae_question.py": {"test_seeds_benchmark_collects_todays_schema_with_intervals"},
    "test_bad_input.py": {"test_a_run_folder_is_held_while_it_trains_and_sigterm_names_the_resume_command"},
    "test_betatc.py": {"test_decomposition_matches_quadrature"},
    "test_cvae.py": {
        "test_conditional_samples_show_the_requested_class",
        "test_training_improves_and_conditioning_helps",
    },
    "test_detectors.py": {
        "test_flow_log_density_matches_a_gaussian",
        "test_flow_logit_density_integrates_to_one_on_the_unit_square",
        "test_pyod_adapter_follows_pyods_contract",
    },
    "test_disentanglement_metrics.py": {
        "test_duplicated_codes",
        "test_ground_truth_scores_one",
        "test_uninformative_codes_score_chance",
    },
    "test_layout.py": {"test_config_imports_no_torch", "test_light_imports", "test_old_run_folder_loads"},
    "test_likelihood_fast.py": {
        "test_default_settings_same_draws_as_the_reference",
        "test_same_estimate_as_the_reference",
    },
    "test_ood.py": {
        "test_benchmark_ood_tiny_and_resumable",
        "test_cli_ood_end_to_end",
        "test_benchmark_ood_with_8_bit_pixels",
    },
    "test_ood_scores.py": {"test_cli_new_score_options"},
    "test_posterior.py": {
        "test_sghmc_matches_closed_form_posterior",
        "test_sghmc_zero_temperature_is_momentum_sgd_to_the_map",
        "test_swag_recovers_mean_and_covariance_of_posterior_iterates",
    },
    "test_robustness.py": {
        "test_benchmark_writes_table_and_figures",
        "test_cli_train_refine_and_evaluate",
        "test_study_trains_pairs_and_reuses_runs",
    },
    "test_runtime.py": {"test_compile_wraps_the_training_step"},
    "test_threads.py": {"test_train_records_threads_and_logs_progress_lines"},
}

#: measured on an idle 2-core machine (2026-12-07, `--durations=0` of the fast tier): every test of
#: 0.4 s or more (setup included), so that the fast tier stays under 90 s with the zoo's contract cases
SLOW_TESTS_MEASURED = {
    "test_anomaly.py": {"test_scores_have_documented_signs", "test_train_stores_scaler_and_score_applies_it"},
    "test_bad_input.py": {"test_every_count_and_size_flag_is_checked", "test_resume_removes_stale_temporary_files"},
    "test_closed_forms.py": {"test_log_likelihood_chunking_honours_num_samples_exactly"},
    "test_contract.py": {"test_likelihood_bounds"},
    "test_custom_model.py": {
        "test_it_trains_from_the_cli_and_loads",
        "test_the_whole_contract_holds_for_a_model_defined_here",
    },
    "test_data.py": {"test_mnist_5k_reads_the_bundled_real_images"},
    "test_disentanglement_baselines.py": {"test_baseline_rows_seeds_cache_and_tables"},
    "test_disentanglement_budget.py": {"test_extended_run_equals_run_from_scratch"},
    "test_distributed_sweep.py": {"test_two_workers_on_postgresql_survive_a_killed_worker"},
    "test_explore.py": {"test_figures_import_neither_scikit_learn_nor_scipy_stats"},
    "test_ood.py": {
        "test_benchmark_ood_mnist_in_distribution_and_as_ood_set",
        "test_detector_api_every_score",
        "test_posterior_samples_reload_bit_identical",
    },
    "test_packaging.py": {"test_every_package_a_test_imports_is_installed_by_test"},
    "test_robustness.py": {"test_evaluate_robustness_needs_labels"},
    "test_run_folder.py": {"test_figures_and_report_come_from_the_run_in_memory"},
    "test_runtime.py": {"test_cli_trains_and_evaluates_an_image_folder"},
    "test_samplers.py": {
        "test_cli_samples_with_each_sampler",
        "test_the_maf_learns_a_standard_normal_to_within_a_tenth_of_a_nat",
        "test_the_two_stage_vae_reproduces_the_codes_moments",
    },
    "test_stream.py": {"test_vaekit_train_streams_an_npy_file"},
    "test_zoo_aae.py": {"test_the_adversary_pulls_the_codes_to_the_prior_on_the_digits"},
    "test_zoo_categorical.py": {
        "test_a_resumed_run_continues_the_schedules_bit_for_bit",
        "test_draws_relaxed_one_hot_and_straight_through_follow_the_class_probabilities",
        "test_it_trains_from_the_cli",
        "test_the_annealing_schedule_is_sec_4s_and_training_advances_it",
    },
    "test_zoo_disentangle.py": {
        "test_the_discriminator_estimates_the_total_correlation_of_a_correlated_gaussian",
        "test_trains_from_the_cli_on_the_digits",
    },
    "test_zoo_flows.py": {"test_it_trains_from_the_cli", "test_the_posterior_density_integrates_to_one"},
    "test_zoo_hvae.py": {
        "test_it_trains_from_the_cli",
        "test_with_vanishing_steps_the_bound_is_the_elbo_and_it_lies_below_log_px",
    },
    "test_zoo_hyperspherical.py": {"test_it_trains_from_the_cli"},
    "test_zoo_ladder.py": {
        "test_it_trains_from_the_cli",
        "test_prior_and_posterior_integrate_to_one_and_sample_what_they_score",
        "test_the_is_log_likelihood_matches_quadrature_over_the_hierarchy",
    },
    "test_zoo_msssim.py": {"test_it_trains_from_the_cli_and_its_reconstructions_improve"},
    "test_zoo_poincare.py": {
        "test_it_trains_from_the_cli",
        "test_the_is_log_likelihood_of_a_trained_model_matches_quadrature_over_the_ball",
    },
    "test_zoo_rae.py": {
        "test_rae_gp_trains_from_the_cli_and_samples_from_its_ex_post_mixture",
        "test_the_gradient_penalty_is_unbiased_for_the_jacobian_frobenius_norm",
    },
    "test_zoo_tighter.py": {"test_it_trains_from_the_cli"},
    "test_zoo_vaegan.py": {
        "test_gamma_weighs_the_feature_likelihood_for_the_decoder_only",
        "test_it_trains_from_the_cli_and_samples",
    },
    "test_zoo_vqvae.py": {"test_it_trains_from_the_cli_and_samples_codebook_points"},
    "test_zoo_wae.py": {
        "test_sliced_wasserstein_matches_the_gaussian_closed_form",
        "test_the_regulariser_pulls_the_codes_to_the_prior_on_the_digits",
    },
}
for _file, _names in SLOW_TESTS_MEASURED.items():
    SLOW_TESTS[_file] = SLOW_TESTS.get(_file, set()) | _names


def pytest_collection_modifyitems(config, items):
    for item in items:
        file = item.path.name
        if file in SLOW_FILES or item.originalname in SLOW_TESTS.get(file, ()):
            item.add_marker(pytest.mark.slow)
