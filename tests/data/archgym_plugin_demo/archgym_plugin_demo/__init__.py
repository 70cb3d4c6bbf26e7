"""A toy accelerator in one file: a MAC array whose latency is MACs / (lanes x clock).

It exists to show (and test) that a pip-installed package's envs appear in ``archgym envs``
and work with run, eval, describe and sweep.  Its numbers model nothing real.
"""

from archgym import Choice, DesignSpace, Metrics, Simulator, register_env

__all__ = ["ToyMacArray", "register"]


class ToyMacArray(Simulator):
    """``lanes`` MAC units at ``clock_mhz``; energy 1 pJ per MAC plus 0.1 W static."""

    name = "toy"
    reference = "none: a demonstration plugin"

    def design_space(self) -> DesignSpace:
        return DesignSpace([Choice(name="lanes", options=(8, 16, 32, 64), ordinal=True),
                            Choice(name="clock_mhz", options=(100, 200, 400), ordinal=True, unit="MHz")])

    def default_design(self) -> dict:
        return {"lanes": 16, "clock_mhz": 200}

    def workloads(self) -> tuple[str, ...]:
        return ("opt-125m/decode", "opt-125m/prefill")

    def _evaluate(self, design: dict, workload) -> Metrics:
        macs = workload.macs
        cycles = -(-macs // design["lanes"])
        latency = cycles / (design["clock_mhz"] * 1e6)
        energy = macs * 1e-12 + 0.1 * latency
        return Metrics(cycles=cycles, latency_s=latency, energy_j=energy, power_w=energy / latency,
                       throughput_per_s=1 / latency, extra={"mac_count": float(macs)})


def register() -> None:
    """The ``archgym.envs`` entry point: register this package's envs."""
    register_env("demo/Toy-v0", "archgym_plugin_demo:ToyMacArray", workload="opt-125m/decode",
                 objective="energy_j*latency_s", description="A toy MAC array from an installed plugin.")
