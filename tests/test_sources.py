from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlproj.errors import InputError, SourceError
from mlproj.home import Home
from mlproj.sources import FetchedSource, fetch, is_git_uri, local_commit, read_head
from tests.conftest import commit_files, git, make_git_repo

PROJECT = {
    "MLproject": "name: demo\nentry_points:\n  main:\n    command: python train.py\n",
    "train.py": "print('v1')\n",
    "sub/MLproject": "name: sub\n",
    "pipelines/train.yml": "type: pipeline\njobs: {}\n",
}


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A repository to clone: branch `main`, tag `v1` on its first commit."""
    path = tmp_path / "remote"
    make_git_repo(path, PROJECT)
    git(path, "tag", "v1")
    return path


def head(path: Path) -> str:
    return git(path, "rev-parse", "HEAD")


def checkout_state(path: Path) -> tuple[str, ...]:
    """What a user would notice changing in their checkout."""
    return (
        head(path),
        git(path, "status", "--porcelain"),
        git(path, "branch", "--show-current"),
        git(path, "remote", "-v"),
        git(path, "stash", "list"),
        git(path, "worktree", "list"),
    )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://github.com/org/repo.git", True),
        ("http://example.com/repo", True),
        ("ssh://git@example.com/repo.git", True),
        ("git://example.com/repo.git", True),
        ("file:///tmp/repo", True),
        ("FILE:///tmp/repo", True),
        ("git@github.com:org/repo.git", True),
        ("./project", False),
        ("project", False),
        ("/abs/project", False),
        ("pipelines/train.yml", False),
        ("C:/project", False),
    ],
)
def test_is_git_uri(uri: str, expected: bool) -> None:
    assert is_git_uri(uri) is expected


# Local folders


def test_local_folder_is_used_as_is(tmp_path: Path, home: Home) -> None:
    (tmp_path / "proj").mkdir()
    source = fetch("proj", None, home, tmp_path)
    assert source == FetchedSource("proj", tmp_path / "proj", None, None, None, is_git=False)
    assert fetch(str(tmp_path / "proj"), None, home, Path("/")).path == tmp_path / "proj"
    assert not home.git_dir.exists()


def test_local_path_is_normalised_without_resolving_symlinks(tmp_path: Path, home: Home) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert fetch("./x/../link", None, home, tmp_path).path == tmp_path / "link"


def test_missing_local_folder(tmp_path: Path, home: Home) -> None:
    with pytest.raises(SourceError, match=r"no such project folder or file: .*nothing"):
        fetch("nothing", None, home, tmp_path)


def test_local_folder_in_a_checkout_records_its_commit(remote: Path, home: Home, tmp_path: Path) -> None:
    source = fetch("remote", None, home, tmp_path)
    assert source.commit == head(remote)
    assert source.is_git is False
    assert local_commit(remote / "sub") == head(remote)
    assert local_commit(remote / "train.py") == head(remote)
    assert local_commit(tmp_path) is None


def test_local_commit_of_a_checkout_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    assert local_commit(tmp_path) is None


def test_local_subdirectory_and_file_fragments(remote: Path, home: Home, tmp_path: Path) -> None:
    source = fetch("remote#sub/", None, home, tmp_path)
    assert (source.uri, source.path, source.subdirectory) == ("remote", remote / "sub", "sub")
    assert source.commit == head(remote)
    pipeline = fetch(f"{remote}#./pipelines/train.yml", None, home, tmp_path)
    assert pipeline.path == remote / "pipelines" / "train.yml"
    assert pipeline.subdirectory == "pipelines/train.yml"


# Git URIs


def test_git_uri_default_branch(remote: Path, home: Home, tmp_path: Path) -> None:
    git(remote, "checkout", "-q", "-b", "other")
    commit_files(remote, {"train.py": "print('other')\n"})  # the remote's HEAD is now `other`
    source = fetch(remote.as_uri(), None, home, tmp_path)
    assert source.commit == head(remote)
    assert source.is_git is True
    assert source.version is None
    assert source.uri == remote.as_uri()
    assert source.path.is_relative_to(home.git_dir)
    assert (source.path / "train.py").read_text() == "print('other')\n"
    assert not (source.path / ".git").exists()


def test_git_subdirectory_and_file(remote: Path, home: Home, tmp_path: Path) -> None:
    source = fetch(f"{remote.as_uri()}#sub", None, home, tmp_path)
    assert source.subdirectory == "sub"
    assert source.uri == remote.as_uri()
    assert (source.path / "MLproject").read_text() == "name: sub\n"
    pipeline = fetch(f"{remote.as_uri()}#pipelines/train.yml", None, home, tmp_path)
    assert pipeline.path.is_file()
    assert pipeline.path.parent.parent == source.path.parent


@pytest.mark.parametrize("kind", ["branch", "tag", "full", "short"])
def test_git_versions(remote: Path, home: Home, tmp_path: Path, kind: str) -> None:
    first = head(remote)
    git(remote, "branch", "old")
    second = commit_files(remote, {"train.py": "print('v2')\n"})
    version, expected = {
        "branch": ("old", first),
        "tag": ("v1", first),
        "full": (second, second),
        "short": (second[:8], second),
    }[kind]
    source = fetch(remote.as_uri(), version, home, tmp_path)
    assert (source.commit, source.version) == (expected, version)
    assert source.path.name == expected
    expected_text = "print('v1')\n" if expected == first else "print('v2')\n"
    assert (source.path / "train.py").read_text() == expected_text


def test_moved_branch_is_fetched_again(remote: Path, home: Home, tmp_path: Path) -> None:
    first = fetch(remote.as_uri(), "main", home, tmp_path)
    moved = commit_files(remote, {"train.py": "print('moved')\n"})
    again = fetch(remote.as_uri(), "main", home, tmp_path)
    assert first.commit != moved
    assert again.commit == moved
    assert (again.path / "train.py").read_text() == "print('moved')\n"
    assert (first.path / "train.py").read_text() == "print('v1')\n"  # old checkout left as it was
    newer = commit_files(remote, {"train.py": "print('newer')\n"})
    assert fetch(remote.as_uri(), None, home, tmp_path).commit == newer


def test_version_not_in_the_cache_is_fetched(remote: Path, home: Home, tmp_path: Path) -> None:
    fetch(remote.as_uri(), "v1", home, tmp_path)
    later = commit_files(remote, {"new.txt": "new"})
    git(remote, "tag", "v2")
    assert fetch(remote.as_uri(), "v2", home, tmp_path).commit == later
    newest = commit_files(remote, {"new.txt": "newest"})
    assert fetch(remote.as_uri(), newest, home, tmp_path).commit == newest


def test_tag_or_commit_in_the_cache_needs_no_fetch(remote: Path, home: Home, tmp_path: Path) -> None:
    first = fetch(remote.as_uri(), None, home, tmp_path)
    uri = remote.as_uri()
    remote.rename(tmp_path / "gone")
    assert fetch(uri, "v1", home, tmp_path).commit == first.commit
    assert fetch(uri, str(first.commit), home, tmp_path).path == first.path
    with pytest.raises(SourceError, match="cannot fetch"):
        fetch(uri, "main", home, tmp_path)  # a branch may have moved: it is always fetched


def test_unknown_version(remote: Path, home: Home, tmp_path: Path) -> None:
    message = f"unknown version 'nope' of {remote.as_uri()}: not a branch, tag or commit"
    with pytest.raises(SourceError, match=re.escape(message)):
        fetch(remote.as_uri(), "nope", home, tmp_path)
    with pytest.raises(SourceError, match="unknown version"):
        fetch(remote.as_uri(), "0" * 40, home, tmp_path)


def test_missing_repository_is_a_one_line_error(tmp_path: Path, home: Home) -> None:
    uri = (tmp_path / "missing").as_uri()
    with pytest.raises(SourceError) as caught:
        fetch(uri, None, home, tmp_path)
    message = str(caught.value)
    assert message.startswith(f"cannot fetch {uri}: ")
    assert "does not appear to be a git repository" in message
    assert "\n" not in message
    assert isinstance(caught.value, InputError)


@pytest.mark.parametrize(
    ("uri", "version", "match"),
    [
        ("--upload-pack=touch x", None, "starts with '-'"),
        ("-oProxyCommand=x", None, "starts with '-'"),
        ("REMOTE", "--upload-pack=touch x", "refused version"),
        ("REMOTE", "-b", "refused version"),
        ("REMOTE", "", "refused version"),
        ("REMOTE", "main\n", "refused version"),
        ("fd::17", None, "transport::address"),
        ("foo::bar", None, "transport::address"),
    ],
)
def test_refused_before_git_runs(
    remote: Path, home: Home, tmp_path: Path, uri: str, version: str | None, match: str
) -> None:
    uri = uri.replace("REMOTE", remote.as_uri())
    with pytest.raises(SourceError, match=match):
        fetch(uri, version, home, tmp_path)
    assert not home.git_dir.exists()


def test_ext_transport_is_refused_and_runs_nothing(tmp_path: Path, home: Home) -> None:
    marker = tmp_path / "pwned"
    for uri in (f"ext::sh -c touch% {marker}", f"EXT::sh -c touch% {marker}#sub"):
        with pytest.raises(SourceError, match="transport::address"):
            fetch(uri, None, home, tmp_path)
        with pytest.raises(SourceError, match="transport::address"):
            fetch(uri, "main", home, tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("fragment", ["../x", "sub/../../x", "/etc", ".."])
@pytest.mark.parametrize("where", ["local", "git"])
def test_subdirectory_escape_is_refused(
    remote: Path, home: Home, tmp_path: Path, fragment: str, where: str
) -> None:
    uri = remote.as_uri() if where == "git" else str(remote)
    with pytest.raises(SourceError, match="refused subdirectory"):
        fetch(f"{uri}#{fragment}", None, home, tmp_path)


def test_symlink_subdirectory_escape_is_refused(remote: Path, home: Home, tmp_path: Path) -> None:
    (remote / "outside").symlink_to("..")
    commit_files(remote, {})
    with pytest.raises(SourceError, match="refused subdirectory 'outside'"):
        fetch(f"{remote.as_uri()}#outside", None, home, tmp_path)
    with pytest.raises(SourceError, match="refused subdirectory 'outside'"):
        fetch(f"{remote}#outside", None, home, tmp_path)


@pytest.mark.parametrize("where", ["local", "git"])
def test_missing_subdirectory(remote: Path, home: Home, tmp_path: Path, where: str) -> None:
    uri = remote.as_uri() if where == "git" else str(remote)
    with pytest.raises(SourceError, match=re.escape(f"no such subdirectory or file 'nope' in {uri}")):
        fetch(f"{uri}#nope", None, home, tmp_path)


def test_empty_or_dot_fragment_means_no_subdirectory(remote: Path, home: Home, tmp_path: Path) -> None:
    assert fetch(f"{remote}#", None, home, tmp_path).subdirectory is None
    assert fetch(f"{remote.as_uri()}#.", None, home, tmp_path).subdirectory is None


# A version of a local checkout


def test_local_checkout_at_a_version_reads_a_separate_clone(remote: Path, home: Home, tmp_path: Path) -> None:
    first = head(remote)
    git(remote, "checkout", "-q", "-b", "feature")
    commit_files(remote, {"train.py": "print('feature')\n"})
    (remote / "train.py").write_text("print('uncommitted')\n")
    (remote / "untracked.txt").write_text("mine")
    git(remote, "add", "untracked.txt")
    before = checkout_state(remote)

    source = fetch("remote", "main", home, tmp_path)
    assert (source.commit, source.is_git, source.version) == (first, True, "main")
    assert source.path.is_relative_to(home.git_dir)
    assert (source.path / "train.py").read_text() == "print('v1')\n"
    sub = fetch("remote/sub#.", "v1", home, tmp_path)
    assert sub.path == source.path / "sub"
    assert sub.uri == "remote/sub"
    pipeline = fetch("remote#pipelines/train.yml", first[:10], home, tmp_path)
    assert pipeline.path == source.path / "pipelines" / "train.yml"

    assert checkout_state(remote) == before
    assert (remote / "train.py").read_text() == "print('uncommitted')\n"
    assert sorted(p.name for p in (remote / ".git" / "refs" / "heads").iterdir()) == ["feature", "main"]


def test_local_checkout_version_sees_new_commits(remote: Path, home: Home, tmp_path: Path) -> None:
    assert fetch(str(remote), "main", home, tmp_path).commit == head(remote)
    later = commit_files(remote, {"train.py": "print('later')\n"})
    assert fetch(str(remote), "main", home, tmp_path).commit == later


def test_local_subfolder_missing_at_the_version(remote: Path, home: Home, tmp_path: Path) -> None:
    commit_files(remote, {"added/x.txt": "x"})
    with pytest.raises(SourceError, match="remote/added does not exist at version 'v1'"):
        fetch("remote/added", "v1", home, tmp_path)


def test_version_on_a_folder_that_is_not_a_checkout(tmp_path: Path, home: Home) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(SourceError, match=re.escape(f"{tmp_path / 'plain'} is not inside a Git checkout")):
        fetch("plain", "main", home, tmp_path)


# Cache


def test_checkout_is_reused_and_cache_is_per_url(remote: Path, home: Home, tmp_path: Path) -> None:
    first = fetch(remote.as_uri(), "v1", home, tmp_path)
    marker = first.path / "marker"
    marker.write_text("kept")
    assert fetch(remote.as_uri() + "/", "v1", home, tmp_path).path == first.path
    assert marker.exists()
    repos = [p for p in home.git_dir.iterdir() if p.is_dir()]
    assert len(repos) == 1
    assert len(repos[0].name) == 20
    assert (repos[0] / "repo.git" / "HEAD").exists()
    assert not list((repos[0] / "checkouts").glob(".tmp-*"))


def test_concurrent_fetches_of_one_url_agree(remote: Path, home: Home, tmp_path: Path) -> None:
    barrier = threading.Barrier(4)

    def one(version: str | None) -> FetchedSource:
        barrier.wait()
        return fetch(remote.as_uri(), version, home, tmp_path)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, [None, "main", "v1", None]))
    assert {r.commit for r in results} == {head(remote)}
    assert {r.path for r in results} == {results[0].path}
    assert (results[0].path / "train.py").read_text() == "print('v1')\n"
    assert not list(results[0].path.parent.glob(".tmp-*"))


def test_concurrent_fetches_from_processes(remote: Path, home: Home, tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from mlproj.home import Home;"
        "from mlproj.sources import fetch; print(fetch(sys.argv[1], None, Home.from_env(), Path.cwd()).path)"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, remote.as_uri()], cwd=tmp_path, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = {child.communicate(timeout=60)[0].strip() for child in children}
    assert [child.returncode for child in children] == [0] * 4
    assert len(outputs) == 1
    assert (Path(outputs.pop()) / "MLproject").is_file()


# Start-up cost


def test_local_sources_do_not_import_gitpython(remote: Path) -> None:
    code = (
        "import sys; import mlproj.sources as s; assert 'git' not in sys.modules;"
        "from pathlib import Path; from mlproj.home import Home;"
        "r = s.fetch(sys.argv[1], None, Home(Path(sys.argv[2])), Path.cwd());"
        "assert r.commit, r; assert 'git' not in sys.modules and 'filelock' not in sys.modules"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    subprocess.run(
        [sys.executable, "-c", code, f"{remote}#sub", str(remote.parent / "home")], check=True, env=env
    )
    subprocess.run(
        [sys.executable, "-c", "import mlproj.sources, sys; assert 'git' not in sys.modules"], check=True
    )


# --- HEAD read from the checkout's files, as git reads it -----------------------------------------------


def git_head(folder: Path) -> str:
    return git(folder, "rev-parse", "--verify", "HEAD")


def test_head_is_read_from_loose_and_packed_refs_as_git_reads_it(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_git_repo(repo, {"a.txt": "1\n"})
    git(repo, "checkout", "-q", "-b", "feature/deep/name")
    commit_files(repo, {"b.txt": "2\n"})
    assert read_head(repo) == git_head(repo)
    git(repo, "pack-refs", "--all")  # the branch now lives in packed-refs only
    assert not (repo / ".git" / "refs" / "heads" / "feature" / "deep" / "name").exists()
    assert read_head(repo) == git_head(repo)
    commit_files(repo, {"c.txt": "3\n"})  # a loose ref again, newer than the packed one
    assert read_head(repo) == git_head(repo)


def test_a_detached_head_is_the_commit_it_holds(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    first = make_git_repo(repo, {"a.txt": "1\n"})
    commit_files(repo, {"a.txt": "2\n"})
    git(repo, "checkout", "-q", first)
    assert read_head(repo) == first == git_head(repo)


def test_a_linked_worktree_and_a_separate_git_dir(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_git_repo(repo, {"a.txt": "1\n"})
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "other", str(worktree))
    commit_files(worktree, {"w.txt": "w\n"})
    assert (worktree / ".git").is_file()
    assert read_head(worktree) == git_head(worktree) != git_head(repo)
    assert local_commit(worktree / "w.txt") == git_head(worktree)
    separate = tmp_path / "separate"
    separate.mkdir()
    git(separate, "init", "-q", "-b", "main", f"--separate-git-dir={tmp_path / 'elsewhere.git'}")
    commit_files(separate, {"s.txt": "s\n"})
    assert read_head(separate) == git_head(separate)


def test_what_it_does_not_read_is_left_to_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    make_git_repo(repo, {"a.txt": "1\n"})
    expected = git_head(repo)
    git(repo, "symbolic-ref", "refs/heads/alias", "refs/heads/main")
    git(repo, "symbolic-ref", "HEAD", "refs/heads/alias")  # a symbolic ref to a symbolic ref
    assert read_head(repo) is None
    assert local_commit(repo) == expected == git_head(repo)  # git's own answer
    git(repo, "symbolic-ref", "HEAD", "refs/heads/main")
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    assert read_head(repo) is None  # Git's variables change what git reads: ask it
    monkeypatch.delenv("GIT_DIR")
    unborn = tmp_path / "unborn"
    unborn.mkdir()
    git(unborn, "init", "-q", "-b", "main")
    assert read_head(unborn) is None
    assert local_commit(unborn) is None


def test_a_checkout_starts_no_git_process(tmp_path: Path) -> None:
    """Reading HEAD costs a few file reads, not a git process (start-up: bench/startup.py)."""
    repo = tmp_path / "repo"
    make_git_repo(repo, {"a.txt": "1\n"})
    code = (
        "import sys, subprocess; from pathlib import Path; from mlproj.sources import local_commit;"
        "calls = []; real = subprocess.run;"
        "subprocess.run = lambda *a, **k: calls.append(a) or real(*a, **k);"
        "print(local_commit(Path(sys.argv[1])), len(calls), 'subprocess' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(repo)], capture_output=True, text=True, check=True)
    sha, calls, _ = done.stdout.split()
    assert (sha, calls) == (git_head(repo), "0")
