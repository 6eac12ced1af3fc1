"""The --dtype bf16/fp16 warning on CPU says what this CPU does with reduced precision."""
from evalbench.adapters import module


def test_bf16_warning_follows_the_cpus_bf16_units(monkeypatch):
    monkeypatch.setattr(module, "_cpu_bf16_units", lambda: True)
    with_units = module.reduced_precision_cpu_warning("bf16")
    assert "faster than fp32" in with_units and "fp32 stays the default" in with_units
    monkeypatch.setattr(module, "_cpu_bf16_units", lambda: False)
    without = module.reduced_precision_cpu_warning("bf16")
    assert "far slower" in without and "70x" in without
    # fp16 has no such units on these CPUs: always the slow-path warning
    monkeypatch.setattr(module, "_cpu_bf16_units", lambda: True)
    assert "far slower" in module.reduced_precision_cpu_warning("fp16")
