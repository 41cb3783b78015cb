"""Drift detection engine: pure computation, no I/O and no Kafka.

Detectors give river's detections exactly (``PageHinkley``, ``ADWIN``) or compute windowed
PSI against fixed reference bins; the :class:`MonitorBank` runs them per (model, stage,
variant) over whole batches and applies the alert policy.
"""

from __future__ import annotations

from .adwin import ADWIN, ADWINPool
from .bank import BankOutput, BankStats, MonitorBank
from .config import ConfigError, EngineConfig, MonitorSettings, load_yaml
from .page_hinkley import PageHinkley, PageHinkleyPool
from .policy import alert_id
from .psi import PSI_EPSILON, PSIPool, WindowedPSI, psi
from .reference import MonitorProfile, SignalProfile, categorical_profile, numeric_profile
from .segments import Segments
from .snapshot import SnapshotError
from .warmup import warm_kernels

__all__ = [
    "ADWIN",
    "PageHinkley",
    "WindowedPSI",
    "psi",
    "PSI_EPSILON",
    "ADWINPool",
    "PageHinkleyPool",
    "PSIPool",
    "Segments",
    "MonitorBank",
    "BankOutput",
    "BankStats",
    "EngineConfig",
    "MonitorSettings",
    "ConfigError",
    "load_yaml",
    "MonitorProfile",
    "SignalProfile",
    "numeric_profile",
    "categorical_profile",
    "alert_id",
    "SnapshotError",
    "warm_kernels",
]
