"""One exception family for everything edgec reports to a user.

Each error carries a one-line message (naming the file, node or option at
fault and what to do) and the process exit code the CLI returns for it, so
the CLI never has to guess and users can script against the codes.
"""

from __future__ import annotations

# Exit codes, documented in the README ("Exit codes").
EXIT_OK = 0
EXIT_MISMATCH = 1  # verify found outputs outside tolerance
EXIT_USAGE = 2  # bad option, unknown target, missing file, malformed shape
EXIT_BAD_MODEL = 3  # not ONNX, corrupt, invalid, unsafe external data, too big
EXIT_UNSUPPORTED = 4  # op TVM cannot import, artifact that cannot run here
EXIT_TOOLCHAIN = 5  # a cross compiler or other external tool is missing
EXIT_COMPILE = 6  # TVM failed while compiling a model edgec accepted
EXIT_BAD_ARTIFACT = 7  # artifact truncated, tampered with or of an unknown format


class EdgecError(Exception):
    """Base class: a message for the user and the exit code that goes with it."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(EdgecError):
    """The command line or API call asks for something that cannot be done."""

    exit_code = EXIT_USAGE


class ModelError(EdgecError):
    """The ONNX file itself is unreadable, invalid or unsafe."""

    exit_code = EXIT_BAD_MODEL


class UnsupportedError(EdgecError):
    """Valid input that edgec, TVM or this host cannot handle."""

    exit_code = EXIT_UNSUPPORTED


class ToolchainError(EdgecError):
    """An external tool (cross compiler, nvcc) is missing or failed."""

    exit_code = EXIT_TOOLCHAIN


class CompileError(EdgecError):
    """TVM rejected a model that passed edgec's own checks."""

    exit_code = EXIT_COMPILE


class ArtifactError(EdgecError):
    """An .edgec artifact is truncated, tampered with or not an artifact."""

    exit_code = EXIT_BAD_ARTIFACT


class MismatchError(EdgecError):
    """Outputs differ from the onnxruntime reference beyond tolerance."""

    exit_code = EXIT_MISMATCH


def first_line(exc: BaseException, *, last: bool = False) -> str:
    """The first (or last) non-blank line of an exception's text, else its type name.

    Library errors (TVM's especially) span many lines; edgec's own messages
    quote one line of them so every error stays a single line.
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1] if last else lines[0]
