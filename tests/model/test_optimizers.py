import math

import numpy as np
import pytest

from model.optimizers import SGD, Adam, OneCycleSchedule, WarmupCosineSchedule, make_optimizer


def test_sgd_momentum_two_steps_by_hand():
    p = [np.array([1.0, -2.0])]
    g = [np.array([0.5, 0.1])]
    opt = SGD(lr=0.1, momentum=0.9)
    # step 1: v = 0.9*0 - 0.1*g = [-0.05, -0.01]; p = [0.95, -2.01]
    opt.step(p, g)
    np.testing.assert_allclose(p[0], [0.95, -2.01])
    # step 2: v = 0.9*[-0.05, -0.01] - [0.05, 0.01] = [-0.095, -0.019]; p = [0.855, -2.029]
    opt.step(p, g)
    np.testing.assert_allclose(p[0], [0.855, -2.029])


def test_sgd_nesterov_and_l2_weight_decay_by_hand():
    p = [np.array([1.0])]
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.5)
    # effective gradient g + wd*p = 0.5 + 0.5*1 = 1.0; s = lr*1.0 = 0.1; v = -0.1
    # p = 1 - 0.1 + 0.9*(-0.1) = 0.81
    opt.step(p, [np.array([0.5])])
    np.testing.assert_allclose(p[0], [0.81])


def test_adam_two_steps_by_hand():
    p = [np.array([1.0])]
    opt = Adam(lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    # step 1, g = 0.5: m = 0.05, v = 0.00025; m_hat = 0.5, v_hat = 0.25
    # p = 1 - 0.1 * 0.5 / (sqrt(0.25) + 1e-8) = 0.9 (to 1e-8)
    opt.step(p, [np.array([0.5])])
    np.testing.assert_allclose(p[0], [0.9], rtol=1e-7)
    # step 2, g = -1: m = 0.045 - 0.1 = -0.055, m_hat = -0.055 / 0.19 = -0.2894737
    # v = 0.00024975 + 0.001 = 0.00124975, v_hat = 0.00124975 / 0.001999 = 0.6251876
    # p = 0.9 + 0.1 * 0.2894737 / 0.7906881 = 0.9366103
    opt.step(p, [np.array([-1.0])])
    np.testing.assert_allclose(p[0], [0.9366103], rtol=1e-6)


def test_adamw_decay_is_decoupled_and_skips_masked_params():
    W, b = np.array([1.0]), np.array([1.0])
    opt = Adam(lr=0.1, weight_decay=0.1, decay=[True, False])
    # W: 1 * (1 - 0.1*0.1) = 0.99, then the Adam step of 0.1 -> 0.89; b: no decay -> 0.9
    opt.step([W, b], [np.array([0.5]), np.array([0.5])])
    np.testing.assert_allclose(W, [0.89], rtol=1e-7)
    np.testing.assert_allclose(b, [0.9], rtol=1e-7)


def test_optimizers_keep_float32():
    p = [np.ones((3, 2), np.float32)]
    for opt in (make_optimizer("sgd", 0.1), make_optimizer("adamw", 0.1, 0.01)):
        opt.step(p, [np.ones((3, 2), np.float32)])
        assert p[0].dtype == np.float32


def test_schedules_shape():
    cos = WarmupCosineSchedule(1.0, 100, warmup_fraction=0.1)
    assert cos(0) == pytest.approx(0.1)
    assert cos(9) == pytest.approx(1.0)
    assert cos(99) == pytest.approx(0.0, abs=1e-3)
    assert all(cos(i) >= cos(i + 1) for i in range(10, 99))
    one = OneCycleSchedule(1.0, 100)
    assert one(0) == pytest.approx(1 / 25)
    assert max(one(i) for i in range(100)) == pytest.approx(1.0)
    assert one(99) < 1e-3
    assert math.isclose(max(range(100), key=one), 30, abs_tol=1)


@pytest.mark.parametrize("bad", [dict(lr=0), dict(lr=-1), dict(lr=0.1, weight_decay=-1)])
def test_optimizer_rejects_bad_hyperparameters(bad):
    with pytest.raises(ValueError):
        SGD(**bad)


def test_unknown_optimizer_name():
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("rmsprop", 0.1)
