"""The one rule for files the commands write (:mod:`appchain.home.safefile`): a new name or, with
force, a regular file; never a link, a device, a FIFO or a home's own file; whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appchain.home.safefile import (
    UnsafeTarget,
    check_folder_target,
    check_target,
    find_protected,
    is_home,
    open_atomically,
    write_atomically,
)


def make_home(folder: Path, *, config: bool = True) -> Path:
    (folder / "keys").mkdir(parents=True)
    (folder / "data" / "chain").mkdir(parents=True)
    if config:
        (folder / "config.toml").write_text("[storage]\n")
    else:
        (folder / "keys" / "node_ed25519.key").write_text("00" * 32 + "\n")
    (folder / "genesis.json").write_text("{}")
    return folder


def test_a_new_name_is_written_whole_and_nothing_else_is_left(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    write_atomically(target, b"hello", force=False)
    assert target.read_bytes() == b"hello"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with pytest.raises(UnsafeTarget, match="already exists: pass --force"):
        write_atomically(target, b"again", force=False)
    write_atomically(target, b"again", force=True)
    assert target.read_bytes() == b"again"
    write_atomically(tmp_path / "secret", b"s", force=False, mode=0o600)
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), open_atomically(target, force=True) as out:
        out.write(b"half of it")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_file_that_appears_meanwhile_is_not_replaced_without_force(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(UnsafeTarget, match="already exists"), open_atomically(target, force=False) as out:
        out.write(b"mine")
        target.write_bytes(b"someone else's")
    assert target.read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


@pytest.mark.parametrize("force", [False, True])
def test_links_fifos_devices_and_folders_are_never_targets(tmp_path: Path, force: bool) -> None:
    real = tmp_path / "real"
    real.write_bytes(b"kept")
    (tmp_path / "link").symlink_to(real)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    cases = {
        tmp_path / "link": "is a symbolic link",
        tmp_path / "dangling": "is a symbolic link",
        tmp_path / "fifo": "is not a regular file",
        Path("/dev/null"): "is not a regular file",
        tmp_path / "folder": "is a folder",
    }
    for target, says in cases.items():
        with pytest.raises(UnsafeTarget, match=says):
            write_atomically(target, b"x", force=force)
    assert real.read_bytes() == b"kept" and not (tmp_path / "nowhere").exists()
    assert (tmp_path / "fifo").is_fifo() and (tmp_path / "link").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "fifo", "folder", "link", "real"]


@pytest.mark.parametrize("config", [True, False], ids=["initialised home", "home with only node keys"])
def test_a_homes_own_files_are_never_targets_however_they_are_named(tmp_path: Path, config: bool) -> None:
    home = make_home(tmp_path / "home", config=config)
    assert is_home(home) and not is_home(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "linked").symlink_to(home)
    protected = [
        home / "keys" / "node_ed25519.key",
        home / "keys" / "new.key",
        home / "genesis.json",
        home / "data" / "chain" / "000001.ldb",
        tmp_path / "elsewhere" / ".." / "home" / "keys" / "node_ed25519.key",
        tmp_path / "linked" / "genesis.json",
        tmp_path / "linked" / "keys" / "x",
    ]
    if config:
        protected.append(home / "config.toml")
    for target in protected:
        assert find_protected(target) is not None, target
        with pytest.raises(UnsafeTarget, match="no command writes there"):
            check_target(target, force=True)
    with pytest.raises(UnsafeTarget, match="no command writes there"):
        check_folder_target(home / "keys" / "testnet")
    # the home's own code may write them, and other names in a home are anyone's
    check_target(home / "keys" / "node_bls.key", force=False, home_file=True)
    for free in (home / "light.json", home / "export.events", tmp_path / "linked" / "notes.txt"):
        assert find_protected(free) is None
        check_target(free, force=False)


def test_a_folder_target_is_new_or_a_real_folder(tmp_path: Path) -> None:
    check_folder_target(tmp_path / "new")
    check_folder_target(tmp_path)
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafeTarget, match="is not a folder"):
        check_folder_target(tmp_path / "file")
    with pytest.raises(UnsafeTarget, match="is a symbolic link"):
        check_folder_target(tmp_path / "link")
    with pytest.raises(UnsafeTarget, match="a folder on the way is a file"):
        check_target(tmp_path / "file" / "x", force=True)


def test_node_keys_and_homes_are_never_made_inside_another_homes_files(
    tmp_path: Path, devnet_dir: Path
) -> None:
    from appchain.home.chain import ChainError
    from appchain.home.home import Home

    home = make_home(tmp_path / "home")
    for inner in (home / "keys" / "inner", home / "data" / "inner"):
        with pytest.raises(ChainError, match="no command writes there"):
            Home(inner).write_node_keys(bytes(32), bytes(32))
        with pytest.raises(ChainError, match="no command writes there"):
            Home.init(inner, devnet_dir / "genesis.json")
        assert not inner.exists()
