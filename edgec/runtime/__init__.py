"""Running artifacts: load with integrity and host checks, run, time. Imports TVM."""
