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
EXIT_DEVICE = 8  # a remote device unreachable, busy, timed out, dropped or of another key


class EdgecError(Exception):
    """Base class of every error edgec raises for a user to act on.

    Catch this one to handle them all; the subclasses below say what went
    wrong. ``str(error)`` is the message alone.

    Attributes:
        message: one line naming the file, node or option at fault and what to do.
        exit_code: what the ``edgec`` command exits with for this error (README,
            "Exit codes"), a class attribute of each subclass.
    """

    exit_code = 1

    def __init__(self, message: str):
        """Wrap ``message``, a single line."""
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        """The message, with no class name or traceback."""
        return self.message


class UsageError(EdgecError):
    """The command line or API call asks for something that cannot be done. Exit code 2."""

    exit_code = EXIT_USAGE


class ModelError(EdgecError):
    """The ONNX file itself is unreadable, invalid or unsafe. Exit code 3."""

    exit_code = EXIT_BAD_MODEL


class UnsupportedError(EdgecError):
    """Valid input that edgec, TVM or this host cannot handle. Exit code 4."""

    exit_code = EXIT_UNSUPPORTED


class ToolchainError(EdgecError):
    """An external tool (cross compiler, nvcc, cmake, qemu-user) is missing or failed.

    When one is missing, the message names the Debian package to install. Exit code 5.
    """

    exit_code = EXIT_TOOLCHAIN


class CompileError(EdgecError):
    """TVM rejected a model that passed edgec's own checks. Exit code 6.

    A bug in edgec or TVM: rerun with ``--debug --save-temps DIR`` and report it.
    """

    exit_code = EXIT_COMPILE


class ArtifactError(EdgecError):
    """An .edgec artifact is truncated, tampered with or not an artifact. Exit code 7."""

    exit_code = EXIT_BAD_ARTIFACT


class DeviceError(EdgecError):
    """A remote device (TVM RPC) could not be reached or used: no server or tracker
    answers, no free device of the key, a call timed out, the device dropped the
    session. The message names the device key and address. Exit code 8."""

    exit_code = EXIT_DEVICE


class MismatchError(EdgecError):
    """Outputs differ from the onnxruntime reference beyond tolerance. Exit code 1."""

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
