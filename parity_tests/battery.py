"""The parity battery as pytest tests, shared by the variant test files.

A variant's test file star-imports these tests and defines two fixtures:
`cfg` (parametrized over its small configs) and `other_variant_cfg` (a config of a
different variant, for the "state dict of another variant" error). pytest then runs
every test below for every config of that file.
"""

from parity_tests import harness as h


def test_forward_parity_fp32(cfg):
    h.check_forward_parity(cfg, h.FP32_TOL)


def test_forward_parity_fp64(cfg):
    h.check_forward_parity(cfg.replace(dtype="float64"), h.FP64_TOL)


def test_gradient_parity_fp64(cfg):
    h.check_gradient_parity(cfg.replace(dtype="float64"))


def test_step_equals_sequence(cfg):
    h.check_step_equals_sequence(cfg)


def test_reset_equals_fresh_memory(cfg):
    h.check_reset_equals_fresh(cfg)


def test_round_trips_bit_exact(cfg):
    h.check_round_trips(cfg)


def test_jit_matches_eager_without_retracing(cfg):
    h.check_jit_matches_and_no_retrace(cfg)


def test_bad_inputs_raise_clear_errors(cfg, other_variant_cfg):
    h.check_bad_inputs(cfg, other_variant_cfg)
