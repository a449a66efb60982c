from __future__ import annotations

import numpy as np
from scipy import integrate, stats

from ml import btyd

CDNOW = btyd.BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)


def test_bgnbd_recovers_cdnow_parameters_from_simulation():
    # CDNOW-like cohort: 39-week window, first purchases spread over the first 12 weeks.
    T = np.random.default_rng(1).uniform(27, 39, 20_000)
    x, tx, TT = btyd.simulate_bgnbd(CDNOW, T, seed=2)
    est = btyd.fit_bgnbd(x, tx, TT)
    assert abs(est.r - CDNOW.r) / CDNOW.r < 0.15
    assert abs(est.alpha - CDNOW.alpha) / CDNOW.alpha < 0.2
    assert abs(est.a - CDNOW.a) / CDNOW.a < 0.25
    assert abs(est.b - CDNOW.b) / CDNOW.b < 0.35


def test_expected_purchases_matches_numerical_integral_even_for_heavy_buyers():
    p = btyd.BGNBDParams(0.8, 5.0, 0.5, 3.0)
    h = 90.0
    for x, tx, T in [(0, 0, 300), (1, 100, 300), (5, 250, 300), (150, 299, 300), (300, 300, 300)]:
        # E[Y | alive] = E_p[(1 - ((alpha+T)/(alpha+T+p h))^(r+x)) / p], p ~ Beta(a, b+x).
        def f(q, x=x, T=T):
            g = (1 - ((p.alpha + T) / (p.alpha + T + q * h)) ** (p.r + x)) / q
            return g * stats.beta.pdf(q, p.a, p.b + x)

        want = btyd.p_alive(p, x, tx, T) * integrate.quad(f, 0, 1, limit=200)[0]
        got = btyd.expected_purchases(p, h, x, tx, T)
        assert np.isclose(got, want, rtol=1e-6), (x, got, want)


def test_p_alive_and_no_purchase_are_probabilities_and_ordered():
    x = np.array([0, 3, 3, 10])
    tx = np.array([0, 30, 100, 100])
    T = np.array([100, 100, 100, 100])
    pa = btyd.p_alive(CDNOW, x, tx, T)
    assert pa[0] == 1.0  # no repeat purchase yet: BG/NBD cannot have dropped them
    assert pa[1] < pa[2]  # same frequency, more recent last purchase -> more likely alive
    p0 = btyd.prob_no_purchase(CDNOW, 90, x, tx, T)
    assert np.all((p0 >= 0) & (p0 <= 1))
    assert p0[3] < p0[1]


def test_gamma_gamma_recovers_parameters_and_shrinks():
    rng = np.random.default_rng(3)
    p, q, g = 6.0, 4.0, 15.0
    n = 20_000
    nu = rng.gamma(q, 1 / g, n)
    x = rng.integers(1, 15, n)
    m = np.array([rng.gamma(p * k, 1 / (v * k)) for k, v in zip(x, nu, strict=True)])
    est = btyd.fit_gamma_gamma(x, m)
    assert abs(est.p - p) / p < 0.15 and abs(est.q - q) / q < 0.15 and abs(est.gamma - g) / g < 0.2
    pop_mean = est.p * est.gamma / (est.q - 1)
    ev = btyd.expected_avg_value(est, [1, 50], [pop_mean * 3, pop_mean * 3])
    assert pop_mean < ev[0] < ev[1] < pop_mean * 3  # few purchases -> more shrinkage
