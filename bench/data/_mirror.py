"""Read files out of the bare git mirrors that the search tool's `fetch` leaves under one folder.

A mirror of github.com/OWNER/NAME lives at ROOT/OWNER+NAME/repo (a bare git directory, or a work tree
whose git directory is repo/.git).  Every read names a pinned commit, so the same mirrors give the same bytes.
"""

from __future__ import annotations

import os
import subprocess


class MirrorError(RuntimeError):
    pass


class Mirrors:
    def __init__(self, root: str) -> None:
        self.root = root

    def git_dir(self, repo: str) -> str:
        base = os.path.join(self.root, repo.replace("/", "+"), "repo")
        for cand in (base, os.path.join(base, ".git")):
            if os.path.isfile(os.path.join(cand, "HEAD")):
                return cand
        raise MirrorError(f"no mirror of {repo} under {self.root} (fetch github:{repo})")

    def _git(self, repo: str, *args: str) -> bytes:
        proc = subprocess.run(["git", "--git-dir", self.git_dir(repo), *args], capture_output=True)
        if proc.returncode != 0:
            raise MirrorError(f"{repo}: git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout

    def show(self, repo: str, commit: str, path: str) -> bytes:
        return self._git(repo, "show", f"{commit}:{path}")

    def text(self, repo: str, commit: str, path: str) -> str:
        """UTF-8 text; in a file that is not all valid UTF-8, each invalid line is read as Windows-1252."""
        data = self.show(repo, commit, path)
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            pass
        out = []
        for line in data.splitlines(keepends=True):
            try:
                out.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(line.decode("cp1252", errors="replace"))
        return "".join(out).lstrip("\ufeff")

    def ls(self, repo: str, commit: str, folder: str) -> list[str]:
        """Paths of the blobs under `folder` at `commit`, sorted."""
        out = self._git(repo, "ls-tree", "-r", "--name-only", commit, "--", folder)
        return sorted(p for p in out.decode().splitlines() if p)

    def has_commit(self, repo: str, commit: str) -> bool:
        proc = subprocess.run(
            ["git", "--git-dir", self.git_dir(repo), "cat-file", "-e", f"{commit}^{{commit}}"],
            capture_output=True,
        )
        return proc.returncode == 0
