"""The tree's one compiled program, pdf-text-server (services/archive/pdf_text_server.cc),
built with the host's g++ against Debian's poppler (libpoppler-private-dev: pdftotext's own
classes), for the host's venv (`make setup`) and for an image's root.

It goes where services.archive.pdf_text_server looks for it: <sys.prefix>/libexec/archiver/
(the venv on the build host, /usr in an image). The image is built from the host's apt
sources, so the libpoppler it links against is the one the image ships.

Usage: python -m image.native OUTPUT_PATH
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .log import BuildError, BuildLog

TREE = Path(__file__).resolve().parent.parent
SOURCE = TREE / "services" / "archive" / "pdf_text_server.cc"
IMAGE_DIR = "usr/libexec/archiver"  # relative to an image's root; a payload folder
IMAGE_PATH = f"{IMAGE_DIR}/pdf-text-server"
# -s: no symbol table, which would name the source by its path (images are reproducible)
COMPILE = ["g++", "-std=c++17", "-O2", "-s", "-Wall", "-Wextra", "-I/usr/include/poppler"]
LIBRARIES = ["-lpoppler"]


def build_pdf_text_server(output: Path, log: BuildLog | None = None) -> Path:
    """Compile SOURCE into `output` (its folders made, mode 0755); returns `output`. Raises
    BuildError with the compiler's messages when it fails (g++ or poppler's headers missing:
    `make setup` installs them)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    command = [*COMPILE, "-o", str(partial), str(SOURCE), *LIBRARIES]
    if log is not None:
        log.run(command)
    else:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError(f"building {output.name} failed:\n{done.stderr.strip()}")
    partial.chmod(0o755)
    partial.replace(output)
    return output


def install(root: Path, log: BuildLog) -> list[str]:
    """Build pdf-text-server into an image's root; returns its path relative to root."""
    build_pdf_text_server(root / IMAGE_PATH, log)
    log.step(f"native: {IMAGE_PATH}")
    return [IMAGE_PATH]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    output = Path(argv[0])
    try:
        build_pdf_text_server(output)
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"built {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
