"""Project sources: a URI → a local folder or file (design.md §4).

A local path is used as it is. A Git URI, or a local checkout read at a `-v` version, goes through the
clone cache under `Home.git_dir`: one bare repository per URL in `<sha256(url)[:20]>/repo.git`, and one
checkout folder per commit in `<sha256(url)[:20]>/checkouts/<commit>/`, guarded by a lock per URL.
A user's own checkout is only ever read from. GitPython is imported only when a Git
source is fetched, so that local runs start fast.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from mlproj.errors import SourceError
from mlproj.home import Home
from mlproj.structs import dataclass
from mlproj.urls import strip_credentials

TYPE_CHECKING = False  # typing's, not imported at run time (start-up: bench/startup.py)
if TYPE_CHECKING:
    import git

GIT_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://")
GIT_ENV = {"GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh", "GIT_TERMINAL_PROMPT": "0"}
"""Set for every git command on a Git source: no transport that runs commands, no credential prompt."""
LOCK_TIMEOUT = 600.0  # seconds to wait for another process fetching the same URL
DEFAULT_REF = "refs/mlproj/default"  # the commit the remote's HEAD (its default branch) pointed at
REFSPECS = ("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")

_SCP_LIKE = re.compile(r"^[^\s/@:]+@[^\s/@:]+:")
_TRANSPORT = re.compile(r"^[A-Za-z0-9+.-]+::")
_ABBREVIATED_SHA = re.compile(r"^[0-9a-fA-F]{4,64}$")
_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


@dataclass(frozen=True)
class FetchedSource:
    uri: str
    """As the user gave it, without the #fragment."""
    path: Path
    """Absolute local path of the project folder (or of the file named by the #fragment)."""
    version: str | None
    """As the user gave it (-v), None if none."""
    commit: str | None
    """The commit SHA when the source is Git or a local Git checkout, else None."""
    subdirectory: str | None
    """The #fragment, normalised, or None."""
    is_git: bool
    """Fetched into mlproj's cache (a Git URI, a local checkout at a -v version, or a zip file): the
    run works in a private copy of it."""


def is_git_uri(uri: str) -> bool:
    """Whether `uri` names a Git repository (a URL or scp-like `user@host:path`) rather than a local path."""
    return uri.lower().startswith(GIT_SCHEMES) or _SCP_LIKE.match(uri) is not None


def fetch(uri: str, version: str | None, home: Home, caller_dir: Path) -> FetchedSource:
    """The local folder (or file) that `uri` at `version` names, fetched into the cache when needed."""
    base, _, fragment = uri.partition("#")
    _refuse_unsafe(base, version)
    subdirectory = _normalise_subdirectory(fragment)
    if base.lower().endswith(".zip"):  # a zipped project, as MLflow runs them (a local file)
        if version is not None:
            raise SourceError(f"cannot use version {version!r}: {base} is a zip file, not a Git repository")
        root = _fetch_zip(base, home, caller_dir)
        return FetchedSource(base, _inside(root, subdirectory, base), None, None, subdirectory, is_git=True)
    if is_git_uri(base):
        commit, root = _fetch_git(base, version, home)
        return FetchedSource(
            base, _inside(root, subdirectory, base), version, commit, subdirectory, is_git=True
        )
    folder = Path(os.path.normpath((caller_dir / Path(base).expanduser()).absolute()))
    if not folder.exists():
        raise SourceError(f"no such project folder or file: {folder}")
    if version is None:
        path = _inside(folder, subdirectory, base)
        return FetchedSource(base, path, None, local_commit(path), subdirectory, is_git=False)
    commit, root = _fetch_local_version(folder, version, home, base)
    return FetchedSource(base, _inside(root, subdirectory, base), version, commit, subdirectory, is_git=True)


def local_commit(path: Path) -> str | None:
    """The HEAD commit of the Git checkout that contains `path`, or None: read from the checkout's own
    files where their layout is the common one (`read_head`), else asked of `git rev-parse`."""
    start = path.absolute()
    if not start.is_dir():
        start = start.parent
    root = _checkout_root(start)
    if root is None:
        return None
    known = read_head(root)
    return known if known is not None else _rev_parse_head(start)


def read_head(root: Path) -> str | None:
    """The commit HEAD names in the checkout at `root`, read from its files without starting git: HEAD
    holding a commit, or a branch whose commit is in a loose ref or in packed-refs, in the checkout's
    own .git folder or a linked worktree's. None whenever git itself should be asked instead: Git's
    variables set, a repository owned by someone else (git refuses those), a reftable store, a
    symbolic ref, an unborn branch, anything unreadable."""
    if any(name in os.environ for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR")):
        return None
    dot_git = root / ".git"
    try:
        if dot_git.stat().st_uid != os.geteuid():
            return None
        if dot_git.is_dir():
            git_dir = dot_git
        else:
            pointer = dot_git.read_text(encoding="utf-8").strip()
            if not pointer.startswith("gitdir:"):
                return None
            git_dir = root / pointer[len("gitdir:") :].strip()
        common = git_dir
        if (git_dir / "commondir").exists():
            common = git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()
        if (common / "reftable").exists():
            return None
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if _FULL_SHA.match(head):
        return head
    if not head.startswith("ref: refs/"):
        return None
    return _resolve_ref(head[len("ref: ") :].strip(), git_dir, common)


def _resolve_ref(ref: str, git_dir: Path, common: Path) -> str | None:
    if ".." in ref.split("/"):
        return None
    for folder in (git_dir, common):
        try:
            loose = (folder / ref).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError):
            return None
        return loose if _FULL_SHA.match(loose) else None
    try:
        packed = (common / "packed-refs").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return None
    for line in packed.splitlines():
        sha, _, name = line.partition(" ")
        if name == ref and _FULL_SHA.match(sha):
            return sha
    return None


def _rev_parse_head(start: Path) -> str | None:
    import subprocess

    try:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
            cwd=start,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and _FULL_SHA.match(sha) else None


def _refuse_unsafe(uri: str, version: str | None) -> None:
    """Refuse what git could take for an option or a command-running transport, before running git."""
    if uri.startswith("-"):
        raise SourceError(f"refused project URI {uri!r}: it starts with '-'")
    if _TRANSPORT.match(uri):
        raise SourceError(f"refused project URI {uri!r}: 'transport::address' URIs are not supported")
    if version is not None and (not version or version.startswith("-") or not version.isprintable()):
        raise SourceError(f"refused version {version!r}: not a branch, tag or commit")


def _normalise_subdirectory(fragment: str) -> str | None:
    """The #fragment as a clean relative path, or None; refused when absolute or escaping upwards."""
    if not fragment:
        return None
    if posixpath.isabs(fragment) or "\\" in fragment:
        raise SourceError(f"refused subdirectory {fragment!r}: it must be a relative path")
    normal = posixpath.normpath(fragment)
    if normal == ".." or normal.startswith("../"):
        raise SourceError(f"refused subdirectory {fragment!r}: it leads outside the project")
    return None if normal == "." else normal


def _inside(root: Path, subdirectory: str | None, uri: str) -> Path:
    """`root/subdirectory`, which must exist and (symbolic links followed) stay inside `root`."""
    if subdirectory is None:
        return root
    target = root / subdirectory
    if not target.exists():
        raise SourceError(f"no such subdirectory or file {subdirectory!r} in {uri}")
    if not target.resolve().is_relative_to(root.resolve()):
        raise SourceError(f"refused subdirectory {subdirectory!r}: it leads outside {uri}")
    return target


def _checkout_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` that holds a `.git` (folder or file), or None."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _fetch_zip(uri: str, home: Home, caller_dir: Path) -> Path:
    """The folder a zip file unpacks to, in the cache (by its content); a member that would land outside
    it, a link, or more than the download limit refuses the file."""
    import hashlib
    import shutil
    import tempfile
    import zipfile

    from mlproj.config import download_limit

    local = uri[len("file://") :] if uri.lower().startswith("file://") else uri
    if "://" in local:
        raise SourceError(f"{uri}: only local zip files are run (download it first)")
    file = Path(os.path.normpath(caller_dir / Path(local).expanduser()))
    if not file.is_file():
        raise SourceError(f"no such zip file: {file}")
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    target = home.root / "zips" / digest.hexdigest()[:20]
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unzip-", dir=target.parent))
    try:
        with zipfile.ZipFile(file) as archive:
            members = archive.infolist()
            if sum(m.file_size for m in members) > download_limit():
                raise SourceError(f"{file}: unpacks to more than the download limit (MLPROJ_DOWNLOAD_LIMIT)")
            for member in members:
                parts = Path(member.filename).parts
                if member.filename.startswith("/") or ".." in parts or (member.external_attr >> 28) == 0o12:
                    raise SourceError(
                        f"{file}: {member.filename!r} would unpack outside the project or is a link"
                    )
            archive.extractall(staging)
        staging.rename(target)
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{file}: not a zip file ({exc})") from None
    except OSError as exc:
        if not target.is_dir():  # another run unpacked it first: use theirs
            raise SourceError(f"{file}: cannot unpack: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _fetch_local_version(folder: Path, version: str, home: Home, uri: str) -> tuple[str, Path]:
    """Read `version` of a local checkout from a separate clone of it; the checkout is not touched."""
    real = folder.resolve()
    top = _checkout_root(real if real.is_dir() else real.parent)
    if top is None:
        raise SourceError(f"cannot use version {version!r}: {folder} is not inside a Git checkout")
    commit, checkout = _fetch_git(str(top), version, home, shown=uri)
    path = checkout / real.relative_to(top)
    if not path.exists():
        raise SourceError(f"{uri} does not exist at version {version!r} (commit {commit})")
    return commit, path


def _fetch_git(url: str, version: str | None, home: Home, shown: str | None = None) -> tuple[str, Path]:
    """(commit, checkout folder) of `version` of the repository at `url`, through the clone cache."""
    import hashlib

    from mlproj.locks import FileLock

    shown = shown or url
    cache = home.git_dir / hashlib.sha256(_normalise_url(url).encode()).hexdigest()[:20]
    cache.mkdir(parents=True, exist_ok=True)
    lock = FileLock(cache / "lock")
    if not lock.acquire(LOCK_TIMEOUT):
        raise SourceError(f"timed out waiting for another fetch of {shown} ({cache})")
    with lock:
        bare = _open_bare(cache, url)
        commit = _resolve(bare, url, version, shown)
        return commit, _materialise(bare, commit, cache / "checkouts", shown)


def _normalise_url(url: str) -> str:
    return url.strip().rstrip("/") or url


def _open_bare(cache: Path, url: str) -> Path:
    """The cache's bare repository, created on first use."""
    bare = cache / "repo.git"
    if not (bare / "HEAD").exists():
        _git(bare, "init", "--quiet", "--bare")
        (cache / "url").write_text(url + "\n", encoding="utf-8")
    return bare


def _resolve(bare: Path, url: str, version: str | None, shown: str) -> str:
    """The commit of `version`, fetching first unless it is a tag or commit already in the cache."""
    if version is None:
        _fetch_refs(bare, url, shown, f"+HEAD:{DEFAULT_REF}")
        commit = _rev(bare, DEFAULT_REF)
        if commit is None:
            raise SourceError(f"cannot find the default branch of {shown}")
        return commit
    found = _lookup(bare, version)
    if found is None or found[0] == "branch":
        _fetch_refs(bare, url, shown)
        found = _lookup(bare, version)
    if found is None and _FULL_SHA.match(version):
        _git(bare, "fetch", "--quiet", "--", url, version)  # a commit on no branch or tag, if allowed
        found = _lookup(bare, version)
    if found is None:
        raise SourceError(f"unknown version {version!r} of {shown}: not a branch, tag or commit")
    return found[1]


def _lookup(bare: Path, version: str) -> tuple[str, str] | None:
    """("branch" | "tag" | "commit", SHA) of `version` in the cache, or None when it is not there."""
    for kind, ref in (("branch", f"refs/remotes/origin/{version}"), ("tag", f"refs/tags/{version}")):
        commit = _rev(bare, ref)
        if commit is not None:
            return kind, commit
    if _ABBREVIATED_SHA.match(version):
        commit = _rev(bare, version.lower())
        if commit is not None:
            return "commit", commit
    return None


def _rev(bare: Path, rev: str) -> str | None:
    status, out, _ = _git(bare, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    return out.strip() if status == 0 else None


def _fetch_refs(bare: Path, url: str, shown: str, *extra: str) -> None:
    status, _, err = _git(bare, "fetch", "--quiet", "--prune", "--", url, *REFSPECS, *extra)
    if status != 0:
        raise SourceError(f"cannot fetch {shown}: {_reason(err)}")


def _materialise(bare: Path, commit: str, checkouts: Path, shown: str) -> Path:
    """The checkout folder of `commit`: reused when present, else written to a temp folder and renamed."""
    final = checkouts / commit
    if final.is_dir():
        return final
    checkouts.mkdir(exist_ok=True)
    for stale in checkouts.glob(".tmp-*"):  # left by a crash: we hold the lock, nobody else writes here
        import shutil

        shutil.rmtree(stale, ignore_errors=True)
    work = checkouts / f".tmp-{os.urandom(8).hex()}"
    work.mkdir()
    index = checkouts / ".index"
    status, _, err = _git(
        bare,
        "--work-tree",
        str(work),
        "read-tree",
        "--reset",
        "-u",
        commit,
        env={"GIT_INDEX_FILE": str(index)},
    )
    index.unlink(missing_ok=True)
    if status != 0:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        raise SourceError(f"cannot check out {commit} of {shown}: {_reason(err)}")
    work.rename(final)
    return final


def _git(bare: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `git --git-dir <bare> ARGS` (argv, never a shell) through GitPython: (status, stdout, stderr)."""
    import git

    runner: git.Git = git.Git(str(bare.parent))
    return runner.execute(
        ["git", "--git-dir", str(bare), *args],
        with_extended_output=True,
        with_exceptions=False,
        env={**GIT_ENV, **(env or {})},
    )


def _reason(stderr: str) -> str:
    """The most useful line of git's error output: the first `fatal:` or `error:` line, else the last."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for prefix in ("fatal:", "error:"):
        for line in lines:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
    return lines[-1] if lines else "git failed"


def copy_checkout(source: FetchedSource, target: Path) -> Path:
    """Copy the whole checkout that `source` lies in to `target`; returns `target`."""
    depth = len(Path(source.subdirectory).parts) if source.subdirectory else 0
    root = source.path.parents[depth - 1] if depth else source.path
    import shutil

    shutil.copytree(root, target, symlinks=True)
    return target


def source_name(path: Path) -> str:
    """MLflow's `mlflow.source.name` of a local project: `file://<checkout>#<subfolder>` inside a Git
    checkout, the folder itself otherwise."""
    root = _checkout_root(path)
    if root is None:
        return str(path)
    inner = path.relative_to(root).as_posix()
    return f"file://{root}" + ("" if inner == "." else f"#{inner}")


def remote_url(path: Path) -> str | None:
    """The URL of the first remote of the checkout holding `path` (as MLflow's
    `mlflow.source.git.repoURL`), without credentials; read from its config file, None when unknown."""
    root = _checkout_root(path)
    if root is None or not (root / ".git").is_dir():
        return None
    try:
        text = (root / ".git" / "config").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    in_remote = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            in_remote = line.startswith("[remote ")
        elif in_remote and line.partition("=")[0].strip().lower() == "url":
            return strip_credentials(line.partition("=")[2].strip())
    return None


def is_branch(source: FetchedSource) -> bool:
    """Whether the Git source's version (-v) named a branch (not a tag or a commit)."""
    if not source.is_git or not source.version:
        return False
    for folder in source.path.parents:  # <cache>/checkouts/<commit>/…: the cache holds repo.git
        if (folder / "repo.git").is_dir():
            return _rev(folder / "repo.git", f"refs/remotes/origin/{source.version}") is not None
    return False
