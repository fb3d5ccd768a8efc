"""The tuning database: MetaSchedule's JSON database, one folder per target.

Records are keyed by the structure of an edgec kernel's unscheduled compute
(its packed layouts included), so models sharing a workload share records.
The files are plain JSON lines, read only after every line has been checked
against the shape MetaSchedule writes: a damaged or foreign file is named in
a one-line error instead of crashing TVM's parser. ``edgec-tuning.json``
records which target and TVM release the records were measured for.

At compile time each kernel gets the fastest schedule on record for its
workload; the template's own schedule is measured into the database before
any search, so the fastest is never one measured slower than the template.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import tvm
from tvm.s_tir import Schedule
from tvm.s_tir import meta_schedule as ms
from tvm_ffi.structural import structural_equal

from ...cache import cache_dir
from ...errors import ArtifactError, UsageError
from ...target_registry import Target
from .kernels.generic import Kernel, finish

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"
META = "edgec-tuning.json"
FORMAT = 1
#: overrides the default folder (tests point it at an empty one)
DB_ENV = "EDGEC_TUNING_DB"


def target_key(target: Target) -> str:
    """Folder name: the target's name and a digest of its TVM target dict, so
    editing the target file starts a new database instead of mixing records."""
    digest = hashlib.sha256(json.dumps(target.tvm_dict(), sort_keys=True).encode()).hexdigest()
    return f"{target.name}-{digest[:10]}"


def default_db_dir(target: Target) -> Path:
    root = os.environ.get(DB_ENV)
    base = Path(root) if root else cache_dir("tuning", create=False)  # tune makes it
    return base / target_key(target)


def workload_module(kernel: Kernel) -> tvm.IRModule:
    return tvm.IRModule({"main": kernel.workload.with_attr("global_symbol", "main")})


def template_schedule(kernel: Kernel, mod: tvm.IRModule) -> Schedule:
    """The template's schedule replayed on ``mod`` (the kernel's workload
    module): the form a tuning record of it takes."""
    sch = Schedule(mod)
    kernel.schedule.trace.apply_to_schedule(sch, remove_postproc=False)
    return sch


def _bad(path: Path, line: int, what: str) -> ArtifactError:
    return ArtifactError(f"{path}:{line}: {what}; this is not a tuning database edgec wrote: "
                         "delete the folder, or compile with --no-tuning-db")


def _is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _rows(path: Path, not_json: str):
    """(line number, parsed row) for each non-blank line of a JSON-lines file."""
    if not path.exists():
        return
    for i, text in enumerate(path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        try:
            yield i, json.loads(text)
        except ValueError:
            raise _bad(path, i, not_json) from None


def check_files(folder: Path) -> int:
    """Check every line of the two JSON files; returns the number of workloads."""
    n_workloads = 0
    path = folder / WORKLOADS
    for i, row in _rows(path, "not JSON"):
        if not (isinstance(row, list) and len(row) == 2 and
                all(isinstance(v, str) for v in row) and row[0].isdigit()):
            raise _bad(path, i, "expected [structural hash, module]")
        n_workloads += 1
    path = folder / RECORDS
    for i, row in _rows(path, "not JSON (a run interrupted mid-write leaves this: "
                              "delete that line)"):
        ok = isinstance(row, list) and len(row) == 2 and isinstance(row[0], int) \
            and 0 <= row[0] < n_workloads and isinstance(row[1], list) and len(row[1]) == 4
        if ok:
            trace, secs, tgt, args = row[1]
            ok = isinstance(trace, list) and len(trace) == 2 and isinstance(tgt, dict) \
                and isinstance(args, list) and \
                (secs is None or (isinstance(secs, list) and all(_is_num(v) for v in secs)))
        if not ok:
            raise _bad(path, i, "expected [workload index, [trace, run seconds, target, "
                                "arguments]]")
    return n_workloads


@dataclass
class TuningDB:
    """One target's database folder, checked and opened."""

    folder: Path
    db: ms.database.JSONDatabase

    @classmethod
    def open(cls, folder: Path, target: Target, tvm_target_dict: dict, *,
             create: bool) -> TuningDB | None:
        """The database in ``folder``; None if it does not exist and ``create`` is false."""
        meta_path = folder / META
        meta = {"format": FORMAT, "target": target.name, "tvm_target": tvm_target_dict,
                "tvm_version": tvm.__version__}
        if not meta_path.exists():
            if (folder / RECORDS).exists() or (folder / WORKLOADS).exists():
                raise ArtifactError(f"{folder}: has tuning records but no {META}; delete the "
                                    "folder, or compile with --no-tuning-db")
            if not create:
                return None
            folder.mkdir(parents=True, exist_ok=True)
            meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        else:
            try:
                found = json.loads(meta_path.read_text())
            except ValueError:
                raise ArtifactError(f"{meta_path}: not JSON; delete the folder, or compile with "
                                    "--no-tuning-db") from None
            if not isinstance(found, dict) or found.get("format") != FORMAT:
                raise ArtifactError(f"{meta_path}: not format {FORMAT} of edgec's tuning "
                                    "database; delete the folder, or compile with "
                                    "--no-tuning-db")
            if found.get("tvm_target") != json.loads(json.dumps(tvm_target_dict)):
                raise UsageError(f"{folder}: its records were measured for target "
                                 f"'{found.get('target')}' ({found.get('tvm_target')}), not "
                                 f"'{target.name}'; pass the right --tuning-db/--db")
        check_files(folder)
        db = ms.database.JSONDatabase(path_workload=str(folder / WORKLOADS),
                                      path_tuning_record=str(folder / RECORDS),
                                      allow_missing=True)
        return cls(folder, db)


@dataclass
class Schedules:
    """Which schedule each edgec kernel gets while dispatching, and what was seen.

    Without a database every kernel keeps its template schedule; with one, a
    workload's fastest record wins (the template's own record among them).
    """

    db: TuningDB | None = None
    target: tvm.target.Target | None = None
    kernels: dict[str, Kernel] = field(default_factory=dict)  # kernel name -> template
    uses: dict[str, int] = field(default_factory=dict)  # kernel name -> call sites
    tuned: list[str] = field(default_factory=list)  # kernels running a searched schedule

    def pick(self, kernel: Kernel):
        """The PrimFunc to add to the module, and whether it came from a record."""
        if self.db is not None:
            mod = workload_module(kernel)
            if self.db.db.has_workload(mod):
                record = self.db.db.query_tuning_record(mod, self.target, "main")
                if record is not None:
                    sch = Schedule(mod)
                    record.trace.apply_to_schedule(sch, remove_postproc=False)
                    if not structural_equal(
                            sch.mod["main"].without_attr("global_symbol"),
                            kernel.schedule.mod["main"].without_attr("global_symbol")):
                        return finish(sch), True
        return finish(kernel.schedule), False

    def added(self, name: str, kernel: Kernel, tuned: bool) -> None:
        self.kernels[name] = kernel
        if tuned:
            self.tuned.append(name)

    def called(self, name: str) -> None:
        self.uses[name] = self.uses.get(name, 0) + 1
