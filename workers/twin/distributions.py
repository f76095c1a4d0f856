"""Probability distributions for durations and inter-arrival times: sampling, fitting, goodness of fit.

Everything here is in seconds and never negative: a duration drawn below zero (a normal's left tail)
is clamped to zero. There is no SciPy in the platform's environment, so the few special functions a
fit needs (the normal CDF, the regularised incomplete gamma function, digamma, the Kolmogorov
distribution) are written out below.

Sampling draws from a `numpy.random.Generator` in batches: one numpy call per scalar costs about a
microsecond, which is more than the event it times; a batch of 4,096 turned into a Python list and
popped costs a few tens of nanoseconds a sample, and the sequence is still fixed by the seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

KINDS = ("fixed", "exponential", "lognormal", "gamma", "normal", "uniform", "empirical")
_PARAMS = {
    "fixed": ("value",),
    "exponential": ("mean",),
    "lognormal": ("mu", "sigma"),  # of the logarithm, as numpy takes them
    "gamma": ("shape", "scale"),
    "normal": ("mean", "sd"),
    "uniform": ("low", "high"),
    "empirical": (),
}
_BATCH = 4096


@dataclass(frozen=True)
class Distribution:
    """A non-negative distribution, JSON-able through `to_dict` / `from_dict`."""

    kind: str
    params: Mapping[str, float] = field(default_factory=dict)
    values: tuple[float, ...] = ()  # the observations of an empirical distribution

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown distribution {self.kind!r}: use one of {', '.join(KINDS)}")
        missing = [name for name in _PARAMS[self.kind] if name not in self.params]
        if missing:
            raise ValueError(f"a {self.kind} distribution needs {', '.join(missing)}")
        for name, value in self.params.items():
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{self.kind} parameter {name} must be a finite number, not {value!r}")
        problem = self._problem()
        if problem:
            raise ValueError(f"{self.kind} distribution: {problem}")

    def _problem(self) -> str | None:
        p = self.params
        if self.kind == "fixed" and p["value"] < 0:
            return "a duration cannot be negative"
        if self.kind == "exponential" and p["mean"] <= 0:
            return "the mean must be positive"
        if self.kind == "lognormal" and p["sigma"] < 0:
            return "sigma cannot be negative"
        if self.kind == "gamma" and (p["shape"] <= 0 or p["scale"] <= 0):
            return "shape and scale must be positive"
        if self.kind == "normal" and p["sd"] < 0:
            return "the standard deviation cannot be negative"
        if self.kind == "uniform" and not 0 <= p["low"] <= p["high"]:
            return "it needs 0 ≤ low ≤ high"
        if self.kind == "empirical" and (not self.values or min(self.values) < 0):
            return "it needs at least one observation, none negative"
        return None

    # -- constructors, in the terms people think in ---------------------------------------------

    @staticmethod
    def fixed(value: float) -> Distribution:
        return Distribution("fixed", {"value": float(value)})

    @staticmethod
    def exponential(mean: float) -> Distribution:
        return Distribution("exponential", {"mean": float(mean)})

    @staticmethod
    def lognormal(mean: float, sd: float) -> Distribution:
        """By the mean and standard deviation of the duration itself, not of its logarithm."""
        if mean <= 0:
            raise ValueError("lognormal distribution: the mean must be positive")
        sigma2 = math.log1p((sd / mean) ** 2)
        return Distribution("lognormal", {"mu": math.log(mean) - sigma2 / 2, "sigma": math.sqrt(sigma2)})

    @staticmethod
    def gamma(shape: float, scale: float) -> Distribution:
        return Distribution("gamma", {"shape": float(shape), "scale": float(scale)})

    @staticmethod
    def normal(mean: float, sd: float) -> Distribution:
        return Distribution("normal", {"mean": float(mean), "sd": float(sd)})

    @staticmethod
    def uniform(low: float, high: float) -> Distribution:
        return Distribution("uniform", {"low": float(low), "high": float(high)})

    @staticmethod
    def empirical(values: Sequence[float]) -> Distribution:
        return Distribution("empirical", {}, tuple(float(v) for v in values))

    # -- moments and CDF ------------------------------------------------------------------------

    def mean(self) -> float:
        p = self.params
        if self.kind == "fixed":
            return p["value"]
        if self.kind == "exponential":
            return p["mean"]
        if self.kind == "lognormal":
            return math.exp(p["mu"] + p["sigma"] ** 2 / 2)
        if self.kind == "gamma":
            return p["shape"] * p["scale"]
        if self.kind == "normal":
            return p["mean"]  # ignoring the clamp at zero, which matters only for sd ≳ mean/2
        if self.kind == "uniform":
            return (p["low"] + p["high"]) / 2
        return float(np.mean(self.values))

    def std(self) -> float:
        p = self.params
        if self.kind == "fixed":
            return 0.0
        if self.kind == "exponential":
            return p["mean"]
        if self.kind == "lognormal":
            s2 = p["sigma"] ** 2
            return math.sqrt(math.expm1(s2)) * self.mean()
        if self.kind == "gamma":
            return math.sqrt(p["shape"]) * p["scale"]
        if self.kind == "normal":
            return p["sd"]
        if self.kind == "uniform":
            return (p["high"] - p["low"]) / math.sqrt(12)
        return float(np.std(self.values))

    def cdf(self, x: float) -> float:
        p = self.params
        if x < 0:
            return 0.0
        if self.kind == "fixed":
            return 1.0 if x >= p["value"] else 0.0
        if self.kind == "exponential":
            return -math.expm1(-x / p["mean"])
        if self.kind == "lognormal":
            if x <= 0:
                return 0.0
            if p["sigma"] == 0:
                return 1.0 if math.log(x) >= p["mu"] else 0.0
            return _normal_cdf((math.log(x) - p["mu"]) / p["sigma"])
        if self.kind == "gamma":
            return _gamma_p(p["shape"], x / p["scale"])
        if self.kind == "normal":
            if p["sd"] == 0:
                return 1.0 if x >= p["mean"] else 0.0
            return _normal_cdf((x - p["mean"]) / p["sd"])  # x ≥ 0 here: the clamped mass sits at 0
        if self.kind == "uniform":
            width = p["high"] - p["low"]
            return 1.0 if width == 0 and x >= p["low"] else min(1.0, max(0.0, (x - p["low"]) / (width or 1)))
        return float(np.searchsorted(np.sort(self.values), x, side="right")) / len(self.values)

    def scaled(self, factor: float) -> Distribution:
        """The same shape with every value multiplied by `factor` (a what-if: "20 % slower")."""
        if factor <= 0:
            raise ValueError("a scale factor must be positive")
        p = self.params
        if self.kind == "fixed":
            return Distribution.fixed(p["value"] * factor)
        if self.kind == "exponential":
            return Distribution.exponential(p["mean"] * factor)
        if self.kind == "lognormal":
            return Distribution("lognormal", {"mu": p["mu"] + math.log(factor), "sigma": p["sigma"]})
        if self.kind == "gamma":
            return Distribution.gamma(p["shape"], p["scale"] * factor)
        if self.kind == "normal":
            return Distribution.normal(p["mean"] * factor, p["sd"] * factor)
        if self.kind == "uniform":
            return Distribution.uniform(p["low"] * factor, p["high"] * factor)
        return Distribution.empirical([v * factor for v in self.values])

    # -- sampling -------------------------------------------------------------------------------

    def sampler(self, rng: np.random.Generator) -> Callable[[], float]:
        """A zero-argument function returning one draw; all draws come from `rng`, in batches."""
        p = self.params
        if self.kind == "fixed" or (self.kind == "normal" and p["sd"] == 0):
            value = p.get("value", p.get("mean", 0.0))
            return lambda: value
        draw: Callable[[int], FloatArray]
        if self.kind == "exponential":
            mean = p["mean"]
            draw = lambda n: rng.exponential(mean, n)  # noqa: E731
        elif self.kind == "lognormal":
            mu, sigma = p["mu"], p["sigma"]
            draw = lambda n: rng.lognormal(mu, sigma, n)  # noqa: E731
        elif self.kind == "gamma":
            shape, scale = p["shape"], p["scale"]
            draw = lambda n: rng.gamma(shape, scale, n)  # noqa: E731
        elif self.kind == "normal":
            mean, sd = p["mean"], p["sd"]
            draw = lambda n: np.maximum(rng.normal(mean, sd, n), 0.0)  # noqa: E731
        elif self.kind == "uniform":
            low, high = p["low"], p["high"]
            draw = lambda n: rng.uniform(low, high, n)  # noqa: E731
        else:
            values = np.asarray(self.values, dtype=np.float64)
            draw = lambda n: rng.choice(values, n)  # noqa: E731
        return _Batched(draw)

    # -- JSON -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, **{k: float(v) for k, v in self.params.items()}}
        if self.kind == "empirical":
            out["values"] = list(self.values)
        out["mean"] = self.mean()
        out["sd"] = self.std() if self.kind != "normal" else self.params["sd"]
        return out

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Distribution:
        """Read what `to_dict` wrote, or a hand-written spec such as {"kind": "lognormal", "mean": 60, "sd": 20}.

        A lognormal may be given by mu/sigma (of the logarithm) or by mean/sd (of the value).
        """
        kind = data.get("kind")
        if not isinstance(kind, str):
            raise ValueError("a distribution needs a 'kind'")
        if kind == "lognormal" and "mu" not in data:
            return Distribution.lognormal(_number(data, "mean"), _number(data, "sd"))
        if kind == "empirical":
            values = data.get("values")
            if not isinstance(values, list):
                raise ValueError("an empirical distribution needs a list of 'values'")
            return Distribution.empirical([float(v) for v in values])
        if kind not in _PARAMS:
            raise ValueError(f"unknown distribution {kind!r}: use one of {', '.join(KINDS)}")
        return Distribution(kind, {name: _number(data, name) for name in _PARAMS[kind]})


def _number(data: Mapping[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"distribution parameter {name!r} must be a number")
    return float(value)


class _Batched:
    """Draws `_BATCH` values at a time and hands them out one by one."""

    __slots__ = ("_buffer", "_draw")

    def __init__(self, draw: Callable[[int], FloatArray]) -> None:
        self._draw = draw
        self._buffer: list[float] = []

    def __call__(self) -> float:
        buffer = self._buffer
        if not buffer:
            buffer.extend(self._draw(_BATCH).tolist())
        return buffer.pop()


# -- fitting --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    """The distribution chosen for a sample, and how well it matches.

    `ks_statistic` is the Kolmogorov-Smirnov distance between the sample and the fitted CDF (0 is a
    perfect match). `ks_p_value` treats the parameters as known in advance; they were estimated from
    the same sample, so it is optimistic (too high): read it as a ranking aid, not a test.
    """

    distribution: Distribution
    n: int
    ks_statistic: float | None
    ks_p_value: float | None
    sample_mean: float
    sample_sd: float
    candidates: dict[str, float]  # kind → KS statistic of each shape tried
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "distribution": self.distribution.to_dict(),
            "n": self.n,
            "ks_statistic": self.ks_statistic,
            "ks_p_value": self.ks_p_value,
            "sample_mean": self.sample_mean,
            "sample_sd": self.sample_sd,
            "candidates": dict(self.candidates),
            "note": self.note,
        }


_KS_MAX_POINTS = 5000  # the KS distance of a random subsample: the incomplete gamma is slow in Python
_MIN_FOR_SHAPE = 8  # below this a shape cannot be told apart: take an exponential with the sample mean


def fit(samples: Sequence[float], kinds: Sequence[str] = ("exponential", "lognormal", "gamma", "normal")) -> Fit:
    """Fit each of `kinds` by maximum likelihood (moments for the normal) and keep the best by KS distance."""
    x = np.asarray(samples, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise ValueError("no observations to fit")
    if x.min() < 0:
        raise ValueError("durations cannot be negative")
    mean, sd = float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0
    if sd <= 1e-12 * max(mean, 1.0):
        dist = Distribution.fixed(mean)
        return Fit(dist, int(x.size), 0.0, 1.0, mean, sd, {"fixed": 0.0}, "every observation is the same")
    if x.size < _MIN_FOR_SHAPE:
        dist = Distribution.exponential(mean) if mean > 0 else Distribution.fixed(0.0)
        ks = ks_statistic(x, dist)
        note = f"only {x.size} observations: an exponential with their mean, no shape fitted"
        return Fit(dist, int(x.size), ks, ks_p_value(ks, int(x.size)), mean, sd, {dist.kind: ks}, note)
    checked = _subsample(x)
    candidates: dict[str, float] = {}
    fitted: dict[str, Distribution] = {}
    for kind in kinds:
        candidate = _fit_kind(kind, x)
        if candidate is None:
            continue
        fitted[kind] = candidate
        candidates[kind] = ks_statistic(checked, candidate)
    if not fitted:
        dist = Distribution.empirical(x.tolist())
        return Fit(
            dist, int(x.size), 0.0, 1.0, mean, sd, {}, "no parametric shape applies: the observations as they are"
        )
    best = min(candidates, key=lambda k: candidates[k])
    ks = candidates[best]
    return Fit(fitted[best], int(x.size), ks, ks_p_value(ks, int(checked.size)), mean, sd, candidates)


def _subsample(x: FloatArray) -> FloatArray:
    if x.size <= _KS_MAX_POINTS:
        return x
    # a fixed seed: the same history always gives the same report
    return np.random.default_rng(0).choice(x, _KS_MAX_POINTS, replace=False)


def _fit_kind(kind: str, x: FloatArray) -> Distribution | None:
    mean = float(x.mean())
    if kind == "exponential":
        return Distribution.exponential(mean) if mean > 0 else None
    if kind == "normal":
        return Distribution.normal(mean, float(x.std(ddof=1)))
    if x.min() <= 0:  # the log-based shapes have no mass at zero
        return None
    logs = np.log(x)
    if kind == "lognormal":
        return Distribution("lognormal", {"mu": float(logs.mean()), "sigma": float(logs.std(ddof=1))})
    if kind == "gamma":
        shape = _gamma_shape(math.log(mean) - float(logs.mean()))
        return Distribution.gamma(shape, mean / shape)
    raise ValueError(f"cannot fit a {kind} distribution")


def _gamma_shape(s: float) -> float:
    """The maximum-likelihood shape k of a gamma: solve ln k - ψ(k) = s (Minka's start, then Newton)."""
    if s <= 0:
        return 1e6  # no spread in the logs: as good as fixed
    k = (3 - s + math.sqrt((s - 3) ** 2 + 24 * s)) / (12 * s)
    for _ in range(20):
        step = (math.log(k) - _digamma(k) - s) / (1 / k - _trigamma(k))
        k_next = k - step
        if k_next <= 0:
            k_next = k / 2
        if abs(k_next - k) < 1e-10 * k:
            return k_next
        k = k_next
    return k


def ks_statistic(x: FloatArray, dist: Distribution) -> float:
    """sup |F_n - F| over the sample."""
    ordered = np.sort(x)
    n = ordered.size
    cdf = np.fromiter((dist.cdf(float(v)) for v in ordered), dtype=np.float64, count=n)
    upper = np.arange(1, n + 1) / n - cdf
    lower = cdf - np.arange(0, n) / n
    return float(max(upper.max(), lower.max()))


def ks_p_value(d: float, n: int) -> float:
    """P(D ≥ d) under the Kolmogorov distribution, with Stephens' small-sample correction."""
    if n <= 0:
        return 1.0
    root = math.sqrt(n)
    lam = (root + 0.12 + 0.11 / root) * d
    if lam < 1e-3:
        return 1.0
    total = 0.0
    for j in range(1, 101):
        term = 2 * (-1) ** (j - 1) * math.exp(-2 * j * j * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
    return min(1.0, max(0.0, total))


# -- special functions ----------------------------------------------------------------------------


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


def _digamma(x: float) -> float:
    result = 0.0
    while x < 6:
        result -= 1 / x
        x += 1
    f = 1 / (x * x)
    return result + math.log(x) - 0.5 / x - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f / 132))))


def _trigamma(x: float) -> float:
    result = 0.0
    while x < 6:
        result += 1 / (x * x)
        x += 1
    f = 1 / (x * x)
    return result + 1 / x + f / 2 + f / x * (1 / 6 - f * (1 / 30 - f * (1 / 42 - f / 30)))


def _gamma_p(a: float, x: float) -> float:
    """The regularised lower incomplete gamma function P(a, x) (series below a+1, continued fraction above)."""
    if x <= 0:
        return 0.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1 / a
        ap = a
        for _ in range(1000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-14:
                break
        return min(1.0, total * math.exp(log_prefix))
    # Lentz's continued fraction for Q(a, x)
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-14:
            break
    return max(0.0, 1 - math.exp(log_prefix) * h)
