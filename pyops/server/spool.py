"""The server's spool folder: uploads (`uploads/<id>/<name>`) and upload-mode results (`results/<job id>/…`).
Nothing stays there for long: an upload goes when the job that used it ends, a result once it is downloaded,
and anything left (never used, never fetched) after `ttl` seconds. The total size is kept under a quota."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Spool:
    root: Path
    quota: int  # bytes
    ttl: float  # seconds

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def results(self) -> Path:
        return self.root / "results"

    def usage(self) -> int:
        """Bytes held by uploads and results."""
        return sum(f.stat().st_size for sub in (self.uploads, self.results) for f in sub.rglob("*") if f.is_file())

    def clear(self) -> None:
        """Remove every upload and result (at server start: they belonged to a server that is gone)."""
        for sub in (self.uploads, self.results):
            shutil.rmtree(sub, ignore_errors=True)
            sub.mkdir(parents=True, exist_ok=True, mode=0o700)

    def sweep(self, keep: set[str]) -> None:
        """Remove uploads and results older than the ttl, except those named in `keep` (used by live jobs)."""
        cutoff = time.time() - self.ttl
        for sub in (self.uploads, self.results):
            for entry in sub.glob("*"):
                try:
                    if entry.name not in keep and entry.stat().st_mtime < cutoff:
                        shutil.rmtree(entry, ignore_errors=True)
                except FileNotFoundError:
                    pass

    def remove_result(self, path: Path) -> None:
        """A result was downloaded: remove it, and its job's folder once empty."""
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass
